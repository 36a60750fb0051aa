/** Version of the server, reported in the welcome and `/healthz`. */
export const SERVER_VERSION = '0.1.0';
