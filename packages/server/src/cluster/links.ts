/**
 * Node-to-node links of a cluster: one WebSocket from each node to each other node it talks to,
 * carrying batches of operations (`Op`) and the binary frames they refer to. Everything one node
 * sends another in a turn leaves in one WebSocket message, in order; a frame for several
 * participants on the other node crosses once (its receivers are listed beside it).
 *
 * Batch layout: u32 length of a JSON header `[ops, blobLengths]`, the header, then the blobs.
 * Ops name blobs by index (`b`); on receipt a blob is a view into the message, not a copy.
 *
 * A node accepts links at `LINK_PATH`, authenticated by an HMAC of the shared cluster secret.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';

/** Path of the link endpoint on every node's port. */
export const LINK_PATH = '/cluster/v1';
/** Header carrying a link's credential. */
const AUTH_HEADER = 'x-backchannel-node';
/** Header carrying the address of the node opening a link (so the other can answer before its registry lists it). */
const URL_HEADER = 'x-backchannel-node-url';
/** A credential older than this is refused, ms. */
const AUTH_MAX_AGE_MS = 60_000;
/** Largest batch a node accepts, bytes. */
const MAX_BATCH_BYTES = 256 * 1024 * 1024;

/** One operation between nodes (`o` names it; see cluster.ts). */
export type Op = { o: string } & Record<string, unknown>;

/** Receives the operations of links from and to other nodes. */
export interface LinkHandler {
  /** A batch of `bytes` bytes from node `from`; `blobs[i]` is blob i. */
  ops(from: number, ops: Op[], blobs: Uint8Array[], bytes: number): void;
  /** Node `no` opened a link and says it is reachable at `url`. */
  opened(no: number, url: string): void;
  /** The link from or to node `no` closed (the node died, or the network between failed). */
  down(no: number, why: string): void;
}

/** Outgoing batch under construction. */
class Batch {
  ops: Op[] = [];
  blobs: Uint8Array[] = [];
  /** The last blob added, so consecutive ops sharing a frame share its blob. */
  lastBlob: Uint8Array | undefined;

  blob(data: Uint8Array): number {
    if (this.lastBlob === data) return this.blobs.length - 1;
    this.lastBlob = data;
    return this.blobs.push(data) - 1;
  }

  encode(): Uint8Array {
    const header = Buffer.from(JSON.stringify([this.ops, this.blobs.map((b) => b.byteLength)]));
    let total = 4 + header.byteLength;
    for (const b of this.blobs) total += b.byteLength;
    const out = Buffer.allocUnsafe(total);
    out.writeUInt32BE(header.byteLength, 0);
    header.copy(out, 4);
    let at = 4 + header.byteLength;
    for (const b of this.blobs) {
      out.set(b, at);
      at += b.byteLength;
    }
    return out;
  }
}

/** Decodes a batch; throws on a malformed one. */
export function decodeBatch(data: Buffer): { ops: Op[]; blobs: Uint8Array[] } {
  const len = data.readUInt32BE(0);
  const [ops, lengths] = JSON.parse(data.subarray(4, 4 + len).toString('utf8')) as [Op[], number[]];
  const blobs: Uint8Array[] = [];
  let at = 4 + len;
  for (const n of lengths) {
    if (at + n > data.byteLength) throw new Error('truncated batch');
    blobs.push(data.subarray(at, at + n));
    at += n;
  }
  return { ops, blobs };
}

/** One outgoing link to a node: queues ops until it is open, then sends one batch per turn. */
export class NodeLink {
  #ws: WebSocket;
  #open = false;
  #closed = false;
  #batch = new Batch();
  #scheduled = false;
  /** Batches made before the socket opened. */
  #early: Uint8Array[] = [];
  /** Bytes of batches sent, and taken by the other node (as it acknowledged). */
  #sent = 0;
  #acked = 0;
  /** When the other node last answered a ping (or the link opened), ms. */
  #lastPong = Date.now();

  constructor(
    readonly no: number,
    url: string,
    credential: string,
    selfUrl: string,
    private readonly onDown: (why: string) => void,
  ) {
    this.#ws = new WebSocket(`${url.replace(/\/$/, '')}${LINK_PATH}`, {
      headers: { [AUTH_HEADER]: credential, [URL_HEADER]: selfUrl },
      perMessageDeflate: false,
      maxPayload: MAX_BATCH_BYTES,
      // A zero masking key: neither end masks or unmasks a batch. Masking guards intermediaries
      // against data a browser script chose; a link carries nothing a script wrote unframed and
      // runs between nodes that authenticated each other.
      generateMask: (mask: Buffer) => void mask.fill(0),
    });
    this.#ws.binaryType = 'nodebuffer';
    this.#ws.on('open', () => {
      this.#open = true;
      this.#lastPong = Date.now();
      for (const b of this.#early) this.#ws.send(b);
      this.#early = [];
    });
    this.#ws.on('pong', () => (this.#lastPong = Date.now()));
    this.#ws.on('error', () => undefined); // 'close' follows
    this.#ws.on('close', (code, reason) => this.#down(`link closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes written to the socket and not yet sent. */
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  /** Bytes sent that the other node has not yet said it has taken (see {@link acked}). */
  get unacked(): number {
    return this.#sent - this.#acked;
  }

  /** The other node has taken `total` bytes of batches from this link so far. */
  acked(total: number): void {
    if (total > this.#acked) this.#acked = Math.min(total, this.#sent);
  }

  /** Queues `op` (with `blob`, put in its field `b`) for this turn's batch. */
  send(op: Op, blob?: Uint8Array): void {
    if (this.#closed) return;
    if (blob) op.b = this.#batch.blob(blob);
    this.#batch.ops.push(op);
    this.#schedule();
  }

  /** The op of this batch added last, if it carries the same blob as `blob` (to add receivers). */
  lastWith(blob: Uint8Array): Op | undefined {
    const b = this.#batch;
    return b.lastBlob === blob ? b.ops[b.ops.length - 1] : undefined;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Sends the batch now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#batch.ops.length === 0 || this.#closed) return;
    const data = this.#batch.encode();
    this.#batch = new Batch();
    this.#sent += data.byteLength;
    if (this.#open) this.#ws.send(data);
    else this.#early.push(data);
  }

  /** Pings; a link that answered no ping for `deadAfterMs` is closed. */
  probe(deadAfterMs: number): void {
    if (!this.#open || this.#closed) return;
    if (Date.now() - this.#lastPong > deadAfterMs) return void this.#ws.terminate();
    this.#ws.ping();
  }

  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    this.#ws.close(1001, 'node leaving');
  }

  #down(why: string): void {
    if (this.#closed && !this.#open) return;
    const wasClosed = this.#closed;
    this.#closed = true;
    this.#open = false;
    if (!wasClosed) this.onDown(why);
  }
}

/** Mints and checks the credentials nodes present to each other. */
export class LinkAuth {
  constructor(private readonly secret: string) {}

  /** The credential node `no` presents now. */
  credential(no: number): string {
    const ts = Date.now();
    return `${no}.${ts}.${this.#mac(no, ts)}`;
  }

  /** The node number a credential proves, or undefined. */
  verify(value: string | undefined): number | undefined {
    const m = /^(\d{1,4})\.(\d{1,15})\.([A-Za-z0-9_-]{43})$/.exec(value ?? '');
    if (!m) return undefined;
    const no = Number(m[1]);
    const ts = Number(m[2]);
    if (Math.abs(Date.now() - ts) > AUTH_MAX_AGE_MS) return undefined;
    const want = Buffer.from(this.#mac(no, ts));
    const got = Buffer.from(m[3]!);
    return want.length === got.length && timingSafeEqual(want, got) ? no : undefined;
  }

  #mac(no: number, ts: number): string {
    return createHmac('sha256', this.secret).update(`backchannel-node-link:${no}:${ts}`).digest('base64url');
  }
}

/** Accepts links from other nodes. */
export class LinkServer {
  readonly #wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_BATCH_BYTES });
  /** Open incoming links, by node number. */
  readonly #incoming = new Map<number, WebSocket>();

  constructor(
    private readonly auth: LinkAuth,
    private readonly handler: LinkHandler,
    private readonly log: Logger,
  ) {}

  /** Takes an upgrade request for {@link LINK_PATH}. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const no = this.auth.verify(req.headers[AUTH_HEADER] as string | undefined);
    if (no === undefined) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
      return;
    }
    const url = req.headers[URL_HEADER];
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      if (typeof url === 'string' && /^wss?:\/\//.test(url)) this.handler.opened(no, url);
      const before = this.#incoming.get(no);
      if (before) {
        // The node reconnected: what the old link carried is over.
        this.#incoming.delete(no);
        before.terminate();
        this.handler.down(no, 'the node opened a new link');
      }
      this.#incoming.set(no, ws);
      ws.binaryType = 'nodebuffer';
      ws.on('message', (data: Buffer) => {
        let batch;
        try {
          batch = decodeBatch(data);
        } catch (error) {
          this.log.error({ err: error, node: no }, 'malformed batch from a node; closing its link');
          ws.terminate();
          return;
        }
        this.handler.ops(no, batch.ops, batch.blobs, data.byteLength);
      });
      ws.on('error', () => undefined);
      ws.on('close', () => {
        if (this.#incoming.get(no) !== ws) return;
        this.#incoming.delete(no);
        this.handler.down(no, 'incoming link closed');
      });
    });
  }

  /** Closes every incoming link. */
  close(): void {
    for (const ws of this.#incoming.values()) ws.close(1001, 'node leaving');
    this.#incoming.clear();
  }
}
