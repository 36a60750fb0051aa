/**
 * @packageDocumentation
 * The Backchannel server, embeddable: `startServer(config)` returns a running server.
 */
export { BackchannelServer, startServer } from './server.js';
export type { ServerEvents, StartOptions } from './server.js';
export { ConfigError, ConfigErrorCode, DEFAULT_CONFIG, DEV_API_KEY, DEV_API_SECRET, LOG_LEVELS, resolveConfig } from './config.js';
export type { ServerConfig } from './config.js';
export type { CallParty, HubEvent, HubEventType, RoomRef } from './core/events.js';
export { SERVER_VERSION } from './version.js';
