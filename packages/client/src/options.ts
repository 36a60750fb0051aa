/**
 * Client options: every default in one place, validated once in `Client.connect`.
 */
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import { resolveReconnect, type ReconnectOptions, type ResolvedReconnectOptions } from './reconnect.js';
import type { TransportFactory, WebSocketConstructor } from './transport.js';

/** Options of {@link Client.connect}. Sizes in bytes, times in milliseconds. */
export interface ClientOptions {
  /** WebSocket implementation (browsers: the global one; Node: the `ws` package, set by the Node entry). */
  WebSocket?: WebSocketConstructor;
  /** Custom transport factory (overrides `WebSocket`). */
  transport?: TransportFactory;
  /** Give up connecting (open + hello) after this long. Default 10 000. */
  connectTimeoutMs?: number;
  /** Reject a request with `request-timeout` after this long. Default 10 000. */
  requestTimeoutMs?: number;
  /** Announce support for data sessions. Default true. */
  dataSession?: boolean;
  /** If set, the only stream ids this client handles; others are refused (senders see `unsupported`). */
  streamIds?: number[];
  /** A send session's queued bytes above which `send()` returns false and `queueTooLong` fires. Default 1 MiB. */
  highWaterMarkBytes?: number;
  /** Queued bytes below which `drained()` resolves and `queueTooLong {triggered:false}` fires. Default 256 KiB. */
  lowWaterMarkBytes?: number;
  /** Unreliable bytes queued per session before the oldest are dropped. Default 256 KiB. */
  unreliableQueueMaxBytes?: number;
  /** Transport buffer level above which the SDK stops writing data frames. Default 256 KiB. */
  socketHighWaterBytes?: number;
  /**
   * Bytes of reliable data (and requests) the SDK lets travel unacknowledged by the server; beyond
   * it data waits in the SDK's priority queue. Bounds what sits in socket buffers between the two,
   * so the server's backlog reports stay current. Default 2 MiB.
   */
  sendWindowBytes?: number;
  /**
   * The same window counted in frames (whichever is reached first). Keeps a flood of small
   * messages from piling up in the server faster than its receivers take them (the server queues
   * what arrives; the SDK learns of that backlog only from its reports). Default 4,096.
   */
  sendWindowFrames?: number;
  /** Bytes held per room for stream ids that have no receiver yet. Default 1 MiB. */
  pendingBufferBytes?: number;
  /** How long data waits for a receiver before it is dropped (and reported). Default 5 000. */
  pendingBufferMs?: number;
  /** Outgoing data streams open at once per room; more is `too-many-streams`. Default 8. */
  maxOutgoingStreams?: number;
  /** Incoming data streams at once per room; more are refused back to the sender. Default 16. */
  maxIncomingStreams?: number;
  /** How long an incoming stream waits for a topic handler before it is refused. Default 2 000. */
  streamHandlerWaitMs?: number;
  /**
   * An incoming data stream on which nothing arrives for this long (while the app is not behind
   * in reading) is aborted (`stream-aborted`, reason `idle-timeout`), refused back to its sender,
   * and its slot among `maxIncomingStreams` freed. Default 30 000.
   */
  streamIdleTimeoutMs?: number;
  /**
   * How long a stream send waits, once all its data has left the SDK, for every destination's
   * confirmation before it rejects (`stream-not-delivered`, reason `unconfirmed` for those that
   * did not answer); counted again from each report that the server still holds some of the
   * stream for a receiver. Default 30 000.
   */
  streamConfirmTimeoutMs?: number;
  /**
   * Bytes a receiver's iterator or a stream reader may hold unread before the SDK withholds its
   * acknowledgements from the server (backpressure: the server then holds further data, and a
   * receiver that stays behind is detached as `receiver-too-slow`). Default 1 MiB.
   */
  receiveHighWaterBytes?: number;
  /** Unread bytes below which that queue lets acknowledgements flow again. Default 256 KiB. */
  receiveLowWaterBytes?: number;
  /**
   * Bytes all partly reassembled `reliable-message` messages of this connection may hold; a
   * message that would exceed it is dropped and reported (`reassembly-overflow`). Default 64 MiB.
   */
  maxReassemblyBytes?: number;
  /**
   * Reconnect automatically after a lost connection, resuming the same participant, calls, rooms
   * and sessions within the server's resume window: `true` (default) with the default schedule,
   * `false` never, or a schedule (see {@link ReconnectOptions}).
   */
  reconnect?: boolean | ReconnectOptions;
  /**
   * Returns an access token for a new connection, when a lost one cannot be resumed (resuming
   * needs no token). Default: the token given to `connect`, which may have expired by then.
   */
  tokenRefresh?: () => string | Promise<string>;
  /** Send a heartbeat ping when nothing was received for this long. Default 5 000. */
  pingIntervalMs?: number;
  /** Consider the connection dead (and reconnect) when nothing was received for this long. Default 10 000. */
  pingTimeoutMs?: number;
  /** Frames received before an acknowledgement is due (sent once the frames of the same read are counted). Default 64. */
  ackEvery?: number;
  /**
   * Bytes received before an acknowledgement is sent (whichever of this and `ackEvery` comes
   * first), and at most a quarter of the send window the server announces. Default 1 MiB.
   */
  ackEveryBytes?: number;
  /** Max delay of an acknowledgement (the server holds what it sent until then). Default 50. */
  ackDelayMs?: number;
  /**
   * Carry `unreliable` data over a WebRTC data channel (datagrams: unordered, never retransmitted)
   * when the server offers it and this runtime has `RTCPeerConnection` (Node: the optional package
   * `node-datachannel`); otherwise, or while it is not open, over the WebSocket. See docs/webrtc.md.
   * Default true.
   */
  webrtc?: boolean;
  /**
   * Carry the `hello` (with the access token) and the requests pipelined behind it in the WebSocket
   * upgrade request, as subprotocols, so that connecting (and `connectAndJoin`) takes no round
   * trip after the upgrade. Off, they are sent once the socket is open. The token then travels in
   * the `Sec-WebSocket-Protocol` request header: turn this off behind a proxy that logs that
   * header. See PROTOCOL.md, "Early frames". Default true.
   */
  earlyFrames?: boolean;
}

type Special = 'WebSocket' | 'transport' | 'streamIds' | 'reconnect' | 'tokenRefresh';
export type ResolvedClientOptions = Required<Omit<ClientOptions, Special>> &
  Pick<ClientOptions, 'WebSocket' | 'transport' | 'streamIds' | 'tokenRefresh'> & { reconnect: ResolvedReconnectOptions | false };

export const DEFAULT_CLIENT_OPTIONS = Object.freeze({
  connectTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  dataSession: true,
  highWaterMarkBytes: 1024 * 1024,
  lowWaterMarkBytes: 256 * 1024,
  unreliableQueueMaxBytes: 256 * 1024,
  socketHighWaterBytes: 256 * 1024,
  sendWindowBytes: 2 * 1024 * 1024,
  sendWindowFrames: 4_096,
  pendingBufferBytes: 1024 * 1024,
  pendingBufferMs: 5_000,
  maxOutgoingStreams: 8,
  maxIncomingStreams: 16,
  streamHandlerWaitMs: 2_000,
  streamIdleTimeoutMs: 30_000,
  streamConfirmTimeoutMs: 30_000,
  receiveHighWaterBytes: 1024 * 1024,
  receiveLowWaterBytes: 256 * 1024,
  maxReassemblyBytes: 64 * 1024 * 1024,
  pingIntervalMs: 5_000,
  pingTimeoutMs: 10_000,
  ackEvery: 64,
  ackEveryBytes: 1024 * 1024,
  ackDelayMs: 50,
  webrtc: true,
  earlyFrames: true,
});

/** Validates options over the defaults; throws `invalid-argument` naming the first bad one. */
export function resolveClientOptions(input: ClientOptions = {}): Readonly<ResolvedClientOptions> {
  const out = { ...DEFAULT_CLIENT_OPTIONS, ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) } as ResolvedClientOptions;
  for (const key of Object.keys(DEFAULT_CLIENT_OPTIONS) as (keyof typeof DEFAULT_CLIENT_OPTIONS)[]) {
    const v = out[key];
    const ok = typeof DEFAULT_CLIENT_OPTIONS[key] === 'boolean' ? typeof v === 'boolean' : Number.isInteger(v) && (v as number) > 0;
    if (!ok) throw new BackchannelError(ErrorCode.InvalidArgument, `option ${key} must be ${typeof DEFAULT_CLIENT_OPTIONS[key] === 'boolean' ? 'a boolean' : 'a positive integer'}`);
  }
  out.reconnect = resolveReconnect(input.reconnect);
  if (out.tokenRefresh !== undefined && typeof out.tokenRefresh !== 'function') throw new BackchannelError(ErrorCode.InvalidArgument, 'option tokenRefresh must be a function');
  if (out.pingTimeoutMs <= out.pingIntervalMs) throw new BackchannelError(ErrorCode.InvalidArgument, 'option pingTimeoutMs must exceed pingIntervalMs');
  if (out.lowWaterMarkBytes > out.highWaterMarkBytes) throw new BackchannelError(ErrorCode.InvalidArgument, 'option lowWaterMarkBytes must not exceed highWaterMarkBytes');
  if (out.receiveLowWaterBytes > out.receiveHighWaterBytes) throw new BackchannelError(ErrorCode.InvalidArgument, 'option receiveLowWaterBytes must not exceed receiveHighWaterBytes');
  if (out.streamIds && !out.streamIds.every((s) => Number.isInteger(s) && s >= 1 && s <= 65535)) {
    throw new BackchannelError(ErrorCode.InvalidArgument, 'option streamIds must hold integers 1–65535');
  }
  return Object.freeze(out);
}
