/**
 * What differs between browsers and Node, behind one seam so the SDK core stays isomorphic.
 * The Node entry (`index.node.ts`) installs faster or Node-only implementations.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import { webSocketTransport, type TransportFactory, type WebSocketConstructor } from './transport.js';

/** An incremental SHA-256. */
export interface Hasher {
  update(data: Uint8Array): void;
  /** Lowercase hex digest. */
  hex(): string;
}

/** A file opened for sending: its size, name and chunks read in order. */
export interface FileSource {
  name: string;
  size: number;
  mimeType: string;
  chunks(chunkBytes: number): AsyncIterable<Uint8Array>;
}

export interface Platform {
  createHasher(): Hasher;
  /** Opens a file path (Node only). */
  openPath(path: string): Promise<FileSource>;
  /** Allocates a buffer for an outgoing frame; every byte gets written, so it need not be zeroed. */
  allocFrame(size: number): Uint8Array;
  /**
   * The transport used when the options name none: WebSocket over `WebSocketImpl` (the option
   * `WebSocket`) or, without one, the platform's own (browsers: the global; Node: the `ws` package).
   */
  transportFor(WebSocketImpl: WebSocketConstructor | undefined): TransportFactory;
}

const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

/** The current platform; replaced field by field by the Node entry. */
export const platform: Platform = {
  createHasher() {
    const h = sha256.create();
    return { update: (d) => void h.update(d), hex: () => toHex(h.digest()) };
  },
  openPath() {
    return Promise.reject(new BackchannelError(ErrorCode.InvalidArgument, 'file paths can only be sent from Node; pass a File or Blob'));
  },
  allocFrame: (size) => new Uint8Array(size),
  transportFor: (WebSocketImpl) => webSocketTransport(WebSocketImpl),
};

/** A Blob/File as a {@link FileSource}, read slice by slice (never whole in memory). */
export function blobSource(blob: Blob, name?: string): FileSource {
  return {
    name: name ?? (blob as Blob & { name?: string }).name ?? 'blob',
    size: blob.size,
    mimeType: blob.type || 'application/octet-stream',
    async *chunks(chunkBytes) {
      for (let off = 0; off < blob.size; off += chunkBytes) {
        yield new Uint8Array(await blob.slice(off, Math.min(off + chunkBytes, blob.size)).arrayBuffer());
      }
    },
  };
}
