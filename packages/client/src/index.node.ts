/**
 * Node entry of the client SDK: identical to the browser entry, with the `ws` package as the
 * default WebSocket (Node 20 has no global WebSocket).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import WebSocket from 'ws';
import { Client } from './client.js';
import { platform } from './platform.js';
import type { ClientOptions } from './options.js';
import { webSocketTransport, type WebSocketConstructor } from './transport.js';

export * from './index.js';

const connect = Client.connect.bind(Client);
// Node default: use `ws` unless the caller chose a WebSocket or a transport.
const nodeTransport = (Impl: WebSocketConstructor) => webSocketTransport(Impl, { nodeBuffers: true });
Object.defineProperty(Client, 'connect', {
  value: (url: string, token: string, options: ClientOptions = {}) =>
    connect(
      url,
      token,
      options.transport ? options : { ...options, transport: nodeTransport(options.WebSocket ?? (WebSocket as unknown as WebSocketConstructor)) },
    ),
});

// Node: frame buffers without zero-filling (small ones come from Node's buffer pool).
platform.allocFrame = (size) => Buffer.allocUnsafe(size);
// Node: native SHA-256 (far faster than the portable one) and sending files by path.
platform.createHasher = () => {
  const h = createHash('sha256');
  return { update: (d) => void h.update(d), hex: () => h.digest('hex') };
};
platform.openPath = async (path) => {
  const st = await stat(path);
  if (!st.isFile()) throw new TypeError(`${path} is not a file`);
  return {
    name: basename(path),
    size: st.size,
    mimeType: 'application/octet-stream',
    async *chunks(chunkBytes: number) {
      for await (const chunk of createReadStream(path, { highWaterMark: chunkBytes })) yield new Uint8Array((chunk as Buffer).buffer, (chunk as Buffer).byteOffset, (chunk as Buffer).byteLength);
    },
  };
};
