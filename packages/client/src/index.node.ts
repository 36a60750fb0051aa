/**
 * Node entry of the client SDK: identical to the browser entry, with the `ws` package as the
 * default WebSocket (Node 20 has no global WebSocket).
 */
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import WebSocket from 'ws';
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import { platform } from './platform.js';
import { webSocketTransport, type WebSocketConstructor } from './transport.js';
import { setPeerConnectionImpl, type PeerConnectionConstructor } from './webrtc.js';

export * from './index.js';

/** Random bytes for masking keys, drawn 4 at a time and refilled in bulk. */
const maskPool = Buffer.alloc(8192);
let maskAt = maskPool.length;

/**
 * Masking keys: random, as RFC 6455 requires, and never all zero. `ws` masks a frame by copying it
 * into a buffer of its own unless the key is zero, so with this the copy always happens inside
 * `send()` and the SDK may reuse its frame buffer (`copiesOnSend`).
 */
function generateMask(mask: Buffer): void {
  if (maskAt === maskPool.length) {
    randomFillSync(maskPool);
    maskAt = 0;
  }
  maskPool.copy(mask, 0, maskAt, (maskAt += 4));
  if ((mask[0]! | mask[1]! | mask[2]! | mask[3]!) === 0) mask[0] = 1;
}

/** `ws` as the SDK's default: no compression (frames are sent at once, in order) and the keys above. */
class NodeWebSocket extends WebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols ?? [], { perMessageDeflate: false, generateMask });
  }
}

// Node default: `ws` as above unless the caller chose a WebSocket (or a transport).
platform.transportFor = (WebSocketImpl) =>
  WebSocketImpl
    ? webSocketTransport(WebSocketImpl, { nodeBuffers: true })
    : webSocketTransport(NodeWebSocket as unknown as WebSocketConstructor, { nodeBuffers: true, copiesOnSend: true });

// Node: WebRTC through the optional package node-datachannel (its standard RTCPeerConnection);
// without it, or if its native library cannot load here, the client stays on the WebSocket.
try {
  const polyfill = createRequire(import.meta.url)('node-datachannel/polyfill') as { RTCPeerConnection: PeerConnectionConstructor };
  setPeerConnectionImpl(polyfill.RTCPeerConnection);
} catch {
  setPeerConnectionImpl(undefined);
}

// Node: frame buffers without zero-filling (small ones come from Node's buffer pool).
platform.allocFrame = (size) => Buffer.allocUnsafe(size);
// Node: native SHA-256 (far faster than the portable one) and sending files by path.
platform.createHasher = () => {
  const h = createHash('sha256');
  return { update: (d) => void h.update(d), hex: () => h.digest('hex') };
};
platform.openPath = async (path) => {
  const st = await stat(path);
  if (!st.isFile()) throw new BackchannelError(ErrorCode.InvalidArgument, `${path} is not a file`);
  return {
    name: basename(path),
    size: st.size,
    mimeType: 'application/octet-stream',
    async *chunks(chunkBytes: number) {
      for await (const chunk of createReadStream(path, { highWaterMark: chunkBytes })) yield new Uint8Array((chunk as Buffer).buffer, (chunk as Buffer).byteOffset, (chunk as Buffer).byteLength);
    },
  };
};
