/**
 * Node entry of the client SDK: identical to the browser entry, with the `ws` package as the
 * default WebSocket (Node 20 has no global WebSocket).
 */
import WebSocket from 'ws';
import { Client } from './client.js';
import type { ClientOptions } from './options.js';
import type { WebSocketConstructor } from './transport.js';

export * from './index.js';

const connect = Client.connect.bind(Client);
// Node default: use `ws` unless the caller chose a WebSocket or a transport.
Object.defineProperty(Client, 'connect', {
  value: (url: string, token: string, options: ClientOptions = {}) =>
    connect(url, token, options.WebSocket || options.transport ? options : { ...options, WebSocket: WebSocket as unknown as WebSocketConstructor }),
});
