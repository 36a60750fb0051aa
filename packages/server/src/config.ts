/**
 * Server configuration: every default lives here, options are validated once at the boundary
 * (CLI flags, environment, config file or the embedding API) and the result is typed and frozen.
 */

import { createHmac, randomBytes } from 'node:crypto';
import type { IceServerInfo } from '@backchannel/protocol';

/** Every server setting, with units in the name or the TSDoc. */
export interface ServerConfig {
  /** Interface to bind. Default `127.0.0.1`. */
  host: string;
  /** TCP port; 0 picks a free one. Default 7800. */
  port: number;
  /** API key → API secret. Tokens are verified against the secret of their `kid`. */
  apiKeys: Record<string, string>;
  /** True when running on the built-in development key (`devkey`/`devsecret`). */
  devKeys: boolean;
  /**
   * Serve the demo web app at `/` and its token endpoint (`POST /demo/token`, which gives anyone
   * who can reach the server a token for `demo-*` conferences) although the server runs on a real
   * API key. On the development key the demo is always on. Default false.
   */
  demo: boolean;
  /** Log level for the JSON logs (`fatal`…`trace`, or `silent`). Default `info`. */
  logLevel: string;
  /** How long a 1:1 call rings before it ends with `no-answer`, ms. Default 30 000. */
  ringTimeoutMs: number;
  /** End a ringing call as `busy` when the callee is already in a connected call. Default true. */
  busyWhenInCall: boolean;
  /** How long an empty conference lives before it ends, ms. Default 10 000. */
  emptyRoomGraceMs: number;
  /** Max participants in one room (hidden ones included). Default 1 000. */
  maxParticipantsPerRoom: number;
  /**
   * Presence frames one room may send per second, over all its members that follow presence:
   * after a batch the room waits members ÷ this (at most 1 s) and the
   * changes made meanwhile leave together. Default 5 000.
   */
  presenceEventsPerSecond: number;
  /** Max size of a participant's metadata, as JSON, bytes. Default 4 096. */
  maxMetadataBytes: number;
  /** A connection that has not said hello by then is closed with `hello-timeout`, ms. Default 10 000. */
  helloTimeoutMs: number;
  /** Time to receive a request's HTTP headers (also an upgrade's); a connection that sends none is closed then, ms. Default 10 000. */
  httpHeadersTimeoutMs: number;
  /** Open connections (WebSocket or in their handshake) allowed from one address; more are refused with 429 `too-many-connections`. Default 10 000. */
  maxConnectionsPerAddress: number;
  /** Control requests (join, open, …) a connection may make per second, sustained; more are answered `rate-limited`. 0 = unlimited. Default 200 (each data stream or file sent costs two). */
  controlRateLimit: number;
  /** Control requests a connection may make in a burst above the sustained rate. Default 1 000. */
  controlRateBurst: number;
  /** Conferences one participant may be in at once; more is `too-many-rooms`. Default 32. */
  maxConferencesPerParticipant: number;
  /** Outgoing calls one participant may have ringing at once; more is `too-many-calls`. Default 4. */
  maxRingingCallsPerParticipant: number;
  /**
   * Interval of WebSocket pings; a connection that has sent nothing by the next ping is dropped (its
   * participant then waits to be resumed), so a dead connection is noticed within two intervals, ms.
   * Default 5 000.
   */
  pingIntervalMs: number;
  /**
   * How long a participant whose connection was lost is kept (in its calls, rooms and sessions,
   * shown to others as reconnecting) for its client to resume; then it leaves as
   * `connection-lost`, ms. Announced in the welcome. Default 30 000.
   */
  resumeWindowMs: number;
  /**
   * Bytes sent to one client that it has not acknowledged yet, beyond which further data waits in
   * the server's queue for it (control frames never wait). Bounds the replay buffer. Default 4 MiB.
   */
  sendWindowBytes: number;
  /**
   * Frames sent to one client that it has not acknowledged yet, beyond which further data waits in
   * the server's queue for it, as with `sendWindowBytes` (whichever is reached first). Bounds how
   * many small frames the replay buffer holds. Default 4,096.
   */
  sendWindowFrames: number;
  /**
   * Bytes of frames (data and events) the server keeps for one client until it acknowledges them,
   * so they can be sent again after a reconnect. A client whose events pile up beyond this while
   * it is away (or that never acknowledges) leaves as `resume-buffer-overflow`. Default 8 MiB.
   */
  replayBufferMaxBytes: number;
  /** Max size of one WebSocket message (frame) a client may send, bytes. Default 256 KiB. */
  maxFrameBytes: number;
  /** Malformed frames tolerated per connection before it is closed. Default 20. */
  maxBadFrames: number;
  /** Fragment size for data, bytes (announced to clients). Default 64 KiB. */
  chunkBytes: number;
  /** Max size of one reliable-message message, bytes. Default 16 MiB. */
  maxMessageBytes: number;
  /** Max open send sessions per participant (all rooms). Default 64. */
  maxSessionsPerParticipant: number;
  /** Max aggregate data a participant may send, kbit/s; 0 = unlimited. Default 200 000 (200 Mbit/s). */
  maxDataBitrateKbps: number;
  /** Max data frames a participant may send per second (over all sessions); 0 = unlimited. Default 300 000. */
  maxDataFramesPerSecond: number;
  /** Bytes the server holds for one receiver over all its sessions; the session adding beyond it is detached as `receiver-too-slow`. Default 32 MiB. */
  connectionQueueMaxBytes: number;
  /**
   * Bytes the server holds for all receivers together (the memory budget of queued data). Beyond it
   * the server reads data from senders in 50 ms steps only, so they slow down (backpressure, no loss). Default 1 GiB.
   */
  serverQueueMaxBytes: number;
  /** Bytes the server holds for one receiver of one reliable session before detaching it as `receiver-too-slow`. Default 8 MiB. */
  receiverQueueMaxBytes: number;
  /**
   * A receiver that stays at least one chunk behind on a reliable session for this long without any
   * of the session's data reaching it is detached as `receiver-too-slow` (so a stalled receiver
   * cannot hold back a sender that respects backpressure; one that reads, only more slowly, is
   * backpressure); 0 disables the time limit. Default 10 000.
   */
  slowReceiverTimeoutMs: number;
  /** Bytes of unreliable data held for one receiver of one session before the oldest is dropped. Default 256 KiB. */
  unreliableQueueMaxBytes: number;
  /** Socket buffer level above which the server stops writing data to a connection, bytes. Default 512 KiB. */
  socketHighWaterBytes: number;
  /** Interval at which a sender is told how far its slowest receiver is behind, ms. Default 50. */
  backlogReportMs: number;
  /** Frames received before an acknowledgement is sent (also sent after `ackDelayMs`). Default 64. */
  ackEvery: number;
  /**
   * Bytes of sequenced frames received before an acknowledgement is sent (whichever of this and
   * `ackEvery` comes first). Clients count unacknowledged bytes against their send window, so this
   * must stay well below it. Default 64 KiB.
   */
  ackEveryBytes: number;
  /** Max delay before acknowledging received frames, ms. Default 200. */
  ackDelayMs: number;
  /** How long graceful shutdown waits for clients to be told and sockets to close, ms. Default 5 000. */
  shutdownTimeoutMs: number;
  /** Server API: sustained requests per second allowed per API key; 0 = unlimited. Default 20. */
  apiRateLimit: number;
  /** Server API: requests an API key may make in a burst above the sustained rate. Default 40. */
  apiRateBurst: number;
  /** Server API: largest request body, bytes. Default 1 MiB. */
  apiMaxBodyBytes: number;
  /** URLs that receive webhook events (http or https). Default none. */
  webhookUrls: readonly string[];
  /** API key whose secret signs webhooks; empty = the first configured key. Default empty. */
  webhookApiKey: string;
  /** A webhook attempt without an answer by then counts as failed, ms. Default 10 000. */
  webhookTimeoutMs: number;
  /** Delay before the first retry of a webhook; doubles for each next retry, ms. Default 1 000. */
  webhookRetryBaseMs: number;
  /** Longest delay between two webhook retries, ms. Default 60 000. */
  webhookRetryMaxMs: number;
  /** Attempts per webhook event (the first included) before it is dropped. Default 8. */
  webhookMaxAttempts: number;
  /** Webhook requests in flight at once per URL (each room has at most one). Default 16. */
  webhookConcurrency: number;
  /** Webhook events held per URL (queued, waiting for a retry or in flight); more are dropped. Default 10 000. */
  webhookQueueMaxEvents: number;
  /** How long graceful shutdown waits for pending webhooks to be delivered, ms. Default 5 000. */
  webhookFlushTimeoutMs: number;
  /**
   * PEM file with the server's certificate (and any intermediates after it). With `tlsKeyFile` the
   * server speaks HTTPS and WSS on its port; re-read by `reloadTls()` (SIGHUP). Default empty: plain.
   */
  tlsCertFile: string;
  /** PEM file with the private key of `tlsCertFile`. Default empty. */
  tlsKeyFile: string;
  /** Serve Prometheus metrics at `GET /metrics`. Default true. */
  metrics: boolean;
  /** When set, `GET /metrics` needs `Authorization: Bearer <metricsToken>`. Default empty: open. */
  metricsToken: string;
  /**
   * Drain (SIGTERM, `drain()`): how long rooms and calls may go on after the server stopped taking
   * new participants, joins and calls; then the rest end with `server-shutdown`, ms. Default 20 000.
   */
  drainTimeoutMs: number;
  /**
   * Offer clients the WebRTC datagram path (docs/webrtc.md): `unreliable` data over an unordered
   * data channel that never retransmits, the WebSocket staying the signalling and reliable path.
   * Needs the optional package `node-datachannel`; without it every client stays on the WebSocket.
   * Default true.
   */
  webrtc: boolean;
  /** Lowest UDP port the server's peer connections use (one port each); 0 with `webrtcPortMax` 0 = any free port. Default 0. */
  webrtcPortMin: number;
  /** Highest UDP port the server's peer connections use; the range bounds how many can be open at once. Default 0. */
  webrtcPortMax: number;
  /**
   * Address written into the server's ICE candidates instead of the interface's own: the public
   * address when the server is behind NAT or in a container with published UDP ports. Empty = the
   * interface's address. Default empty.
   */
  webrtcAnnouncedAddress: string;
  /** STUN/TURN servers handed to clients for their peer connection (`{ urls, username?, credential? }`). Default none. */
  webrtcIceServers: readonly IceServerInfo[];
  /**
   * Time from a client's offer until its data channel must be open; then the server closes the
   * peer connection and the client stays on the WebSocket (announced in the welcome), ms. Default 5 000.
   */
  webrtcNegotiationTimeoutMs: number;
  /**
   * Peer connections the server holds at once (each about 120 KiB and a UDP port); an offer beyond
   * it is answered `webrtc-unavailable` and that client's unreliable data stays on the WebSocket.
   * Default 2 000.
   */
  webrtcMaxPeerConnections: number;
  /**
   * Cluster mode: URL of the Redis server the nodes coordinate through (`redis://` or `rediss://`,
   * with user, password and database number if needed). Empty = a single process, nothing shared.
   * Default empty.
   */
  redis: string;
  /**
   * Cluster mode: the URL other nodes use to reach this node's port (`ws://` or `wss://`). Default:
   * derived from `host` and `port` (and `wss` with TLS); a wildcard `host` (`0.0.0.0`, `::`) names
   * no reachable address, so it must then be set. With `port` 0 it is derived from the port bound
   * at start ({@link clusterAddressFor}) and stays empty here.
   */
  clusterAddress: string;
  /** Cluster mode: this node's id in the registry (1–64 of `A–Z a–z 0–9 . _ -`). Default: random per start. */
  clusterNodeId: string;
  /** Cluster mode: interval at which this node refreshes its registration and reads the others', ms. Default 1 000. */
  clusterHeartbeatMs: number;
  /**
   * Cluster mode: a node whose registration was not refreshed for this long counts as dead and a
   * survivor ends its rooms; at least twice `clusterHeartbeatMs`, ms. Default 3 000.
   */
  clusterNodeTtlMs: number;
  /**
   * Cluster mode: shared secret the nodes authenticate each other with (≥ 16 characters). Default:
   * derived from the secret of the first API key (HMAC-SHA256 over a fixed label), so nodes that
   * share their API keys need no extra setting.
   */
  clusterSecret: string;
}

/** Development API key; a server using it logs a warning. */
export const DEV_API_KEY = 'devkey';
/** Development API secret; a server using it logs a warning. */
export const DEV_API_SECRET = 'devsecret';

/** Every default, in one place. */
export const DEFAULT_CONFIG: Readonly<ServerConfig> = Object.freeze({
  host: '127.0.0.1',
  port: 7800,
  apiKeys: { [DEV_API_KEY]: DEV_API_SECRET },
  devKeys: true,
  demo: false,
  logLevel: 'info',
  ringTimeoutMs: 30_000,
  busyWhenInCall: true,
  emptyRoomGraceMs: 10_000,
  maxParticipantsPerRoom: 1_000,
  presenceEventsPerSecond: 5_000,
  maxMetadataBytes: 4_096,
  helloTimeoutMs: 10_000,
  httpHeadersTimeoutMs: 10_000,
  maxConnectionsPerAddress: 10_000,
  controlRateLimit: 200,
  controlRateBurst: 1_000,
  maxConferencesPerParticipant: 32,
  maxRingingCallsPerParticipant: 4,
  pingIntervalMs: 5_000,
  resumeWindowMs: 30_000,
  sendWindowBytes: 4 * 1024 * 1024,
  sendWindowFrames: 4_096,
  replayBufferMaxBytes: 8 * 1024 * 1024,
  maxFrameBytes: 256 * 1024,
  maxBadFrames: 20,
  chunkBytes: 64 * 1024,
  maxMessageBytes: 16 * 1024 * 1024,
  maxSessionsPerParticipant: 64,
  maxDataBitrateKbps: 200_000,
  maxDataFramesPerSecond: 300_000,
  connectionQueueMaxBytes: 32 * 1024 * 1024,
  serverQueueMaxBytes: 1024 * 1024 * 1024,
  receiverQueueMaxBytes: 8 * 1024 * 1024,
  slowReceiverTimeoutMs: 10_000,
  unreliableQueueMaxBytes: 256 * 1024,
  socketHighWaterBytes: 512 * 1024,
  backlogReportMs: 50,
  ackEvery: 64,
  ackEveryBytes: 64 * 1024,
  ackDelayMs: 200,
  shutdownTimeoutMs: 5_000,
  apiRateLimit: 20,
  apiRateBurst: 40,
  apiMaxBodyBytes: 1024 * 1024,
  webhookUrls: Object.freeze([]) as readonly string[],
  webhookApiKey: '',
  webhookTimeoutMs: 10_000,
  webhookRetryBaseMs: 1_000,
  webhookRetryMaxMs: 60_000,
  webhookMaxAttempts: 8,
  webhookConcurrency: 16,
  webhookQueueMaxEvents: 10_000,
  webhookFlushTimeoutMs: 5_000,
  tlsCertFile: '',
  tlsKeyFile: '',
  metrics: true,
  metricsToken: '',
  drainTimeoutMs: 20_000,
  webrtc: true,
  webrtcPortMin: 0,
  webrtcPortMax: 0,
  webrtcAnnouncedAddress: '',
  webrtcIceServers: Object.freeze([]) as readonly IceServerInfo[],
  webrtcNegotiationTimeoutMs: 5_000,
  webrtcMaxPeerConnections: 2_000,
  redis: '',
  clusterAddress: '',
  clusterNodeId: '',
  clusterHeartbeatMs: 1_000,
  clusterNodeTtlMs: 3_000,
  clusterSecret: '',
});

type NumericKey = { [K in keyof ServerConfig]: ServerConfig[K] extends number ? K : never }[keyof ServerConfig];

/** Inclusive bounds of every numeric setting. */
const BOUNDS: Record<NumericKey, [number, number]> = {
  port: [0, 65535],
  ringTimeoutMs: [1, 86_400_000],
  emptyRoomGraceMs: [0, 86_400_000],
  maxParticipantsPerRoom: [2, 1_000_000],
  presenceEventsPerSecond: [100, 1_000_000_000],
  maxMetadataBytes: [0, 1024 * 1024],
  helloTimeoutMs: [1, 600_000],
  httpHeadersTimeoutMs: [100, 600_000],
  maxConnectionsPerAddress: [1, 10_000_000],
  controlRateLimit: [0, 1_000_000],
  controlRateBurst: [1, 1_000_000],
  maxConferencesPerParticipant: [1, 100_000],
  maxRingingCallsPerParticipant: [1, 100_000],
  pingIntervalMs: [100, 600_000],
  resumeWindowMs: [0, 3_600_000],
  sendWindowBytes: [64 * 1024, 1024 * 1024 * 1024],
  sendWindowFrames: [16, 1_000_000],
  replayBufferMaxBytes: [64 * 1024, 4 * 1024 * 1024 * 1024],
  maxFrameBytes: [1024, 64 * 1024 * 1024],
  maxBadFrames: [0, 1_000_000],
  chunkBytes: [256, 1024 * 1024],
  maxMessageBytes: [1, 1024 * 1024 * 1024],
  maxSessionsPerParticipant: [1, 65535],
  maxDataBitrateKbps: [0, 100_000_000],
  maxDataFramesPerSecond: [0, 100_000_000],
  connectionQueueMaxBytes: [64 * 1024, 64 * 1024 * 1024 * 1024],
  serverQueueMaxBytes: [1024 * 1024, 1024 * 1024 * 1024 * 1024],
  receiverQueueMaxBytes: [1024, 4 * 1024 * 1024 * 1024],
  slowReceiverTimeoutMs: [0, 3_600_000],
  unreliableQueueMaxBytes: [1024, 1024 * 1024 * 1024],
  socketHighWaterBytes: [1024, 1024 * 1024 * 1024],
  backlogReportMs: [1, 60_000],
  ackEvery: [1, 1_000_000],
  ackEveryBytes: [1, 1024 * 1024 * 1024],
  ackDelayMs: [1, 60_000],
  shutdownTimeoutMs: [0, 600_000],
  apiRateLimit: [0, 1_000_000],
  apiRateBurst: [1, 1_000_000],
  apiMaxBodyBytes: [1024, 64 * 1024 * 1024],
  webhookTimeoutMs: [1, 600_000],
  webhookRetryBaseMs: [1, 3_600_000],
  webhookRetryMaxMs: [1, 86_400_000],
  webhookMaxAttempts: [1, 100],
  webhookConcurrency: [1, 1_000],
  webhookQueueMaxEvents: [1, 10_000_000],
  webhookFlushTimeoutMs: [0, 600_000],
  drainTimeoutMs: [0, 86_400_000],
  webrtcPortMin: [0, 65535],
  webrtcPortMax: [0, 65535],
  webrtcNegotiationTimeoutMs: [100, 600_000],
  webrtcMaxPeerConnections: [0, 1_000_000],
  clusterHeartbeatMs: [10, 60_000],
  clusterNodeTtlMs: [20, 600_000],
};

/** Error codes of {@link ConfigError}. */
export const ConfigErrorCode = {
  /** A setting is unknown, of the wrong type or out of bounds. */
  Invalid: 'config-invalid',
  /** A configuration file cannot be read or is not a JSON object. */
  FileUnreadable: 'config-file-unreadable',
  /** The TLS certificate or key file is missing or cannot be read. */
  TlsFileUnreadable: 'tls-file-unreadable',
  /** The TLS certificate or key file does not hold a PEM certificate / private key. */
  TlsInvalid: 'tls-invalid',
  /** The TLS private key does not belong to the certificate. */
  TlsKeyMismatch: 'tls-key-mismatch',
} as const;
export type ConfigErrorCode = (typeof ConfigErrorCode)[keyof typeof ConfigErrorCode];

/** Log levels of the JSON logs, most severe first; `silent` logs nothing. */
export const LOG_LEVELS: readonly string[] = Object.freeze(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/**
 * Thrown for an invalid setting; the message names the setting and what it must be. `code` is
 * `config-invalid`, or `config-file-unreadable` for a config file that cannot be read.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code: ConfigErrorCode;

  constructor(message: string, options: { code?: ConfigErrorCode; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code ?? ConfigErrorCode.Invalid;
  }
}

/** Validates `input` over the defaults and returns a frozen, complete configuration. */
export function resolveConfig(input: Partial<ServerConfig> = {}): Readonly<ServerConfig> {
  const out: ServerConfig = { ...DEFAULT_CONFIG, ...stripUndefined(input) };
  for (const key of Object.keys(input)) {
    if (!(key in DEFAULT_CONFIG)) throw new ConfigError(`unknown setting "${key}"`);
  }
  for (const [key, [min, max]] of Object.entries(BOUNDS) as [NumericKey, [number, number]][]) {
    const value = out[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new ConfigError(`setting "${key}" must be an integer from ${min} to ${max} (got ${JSON.stringify(value)})`);
    }
  }
  if (typeof out.host !== 'string' || !out.host) throw new ConfigError('setting "host" must be a non-empty string');
  if (!LOG_LEVELS.includes(out.logLevel)) throw new ConfigError(`setting "logLevel" must be one of ${LOG_LEVELS.join(', ')} (got ${JSON.stringify(out.logLevel)})`);
  if (typeof out.busyWhenInCall !== 'boolean') throw new ConfigError('setting "busyWhenInCall" must be a boolean');
  if (typeof out.demo !== 'boolean') throw new ConfigError('setting "demo" must be a boolean');
  const keys = Object.entries(out.apiKeys ?? {});
  if (keys.length === 0) throw new ConfigError('setting "apiKeys" needs at least one key: secret pair');
  for (const [k, s] of keys) {
    if (!k || typeof s !== 'string' || s.length < 8) throw new ConfigError(`API key "${k}" needs a secret of at least 8 characters`);
  }
  out.devKeys = keys.length === 1 && keys[0]![0] === DEV_API_KEY && keys[0]![1] === DEV_API_SECRET;
  if (out.chunkBytes + 64 > out.maxFrameBytes) throw new ConfigError('setting "maxFrameBytes" must exceed "chunkBytes" by at least 64 bytes');
  out.apiKeys = Object.freeze({ ...out.apiKeys });
  out.webhookUrls = Object.freeze(checkWebhookUrls(out.webhookUrls));
  if (typeof out.webhookApiKey !== 'string') throw new ConfigError('setting "webhookApiKey" must be a string (an API key, or empty for the first one)');
  if (out.webhookApiKey && !Object.hasOwn(out.apiKeys, out.webhookApiKey)) throw new ConfigError(`setting "webhookApiKey" names unknown API key "${out.webhookApiKey}"`);
  if (out.sendWindowBytes > out.replayBufferMaxBytes) throw new ConfigError('setting "sendWindowBytes" must not exceed "replayBufferMaxBytes"');
  if (out.webhookRetryBaseMs > out.webhookRetryMaxMs) throw new ConfigError('setting "webhookRetryBaseMs" must not exceed "webhookRetryMaxMs"');
  checkOperations(out);
  checkWebRtc(out);
  checkCluster(out);
  return Object.freeze(out);
}

/** Hosts that bind every interface: they name no address another node could connect to. */
const WILDCARD_HOSTS: ReadonlySet<string> = new Set(['0.0.0.0', '::', '[::]', '::0', '0:0:0:0:0:0:0:0']);

/** Label of the HMAC that derives the default `clusterSecret` from an API secret. */
const CLUSTER_SECRET_LABEL = 'backchannel cluster secret v1';

/**
 * The `clusterAddress` of a node bound to `port`: the setting when it is set, else
 * `ws://host:port` (`wss` with TLS). For a server configured with `port` 0, which can only know it
 * once it listens. Throws {@link ConfigError} for a wildcard `host`.
 */
export function clusterAddressFor(config: Pick<ServerConfig, 'clusterAddress' | 'host' | 'tlsCertFile'>, port: number): string {
  if (config.clusterAddress) return config.clusterAddress;
  if (WILDCARD_HOSTS.has(config.host)) {
    throw new ConfigError(`setting "clusterAddress" is needed in cluster mode when "host" is ${JSON.stringify(config.host)} (every interface): set the ws:// or wss:// URL other nodes reach this one at`);
  }
  const host = config.host.includes(':') && !config.host.startsWith('[') ? `[${config.host}]` : config.host;
  return `${config.tlsCertFile ? 'wss' : 'ws'}://${host}:${port}`;
}

/**
 * Cluster settings: URLs of the right schemes, a node id usable in Redis keys, a TTL that survives
 * one missed heartbeat. With `redis` set, fills in the derived defaults (node id, address, secret).
 */
function checkCluster(out: ServerConfig): void {
  for (const key of ['redis', 'clusterAddress', 'clusterNodeId', 'clusterSecret'] as const) {
    if (typeof out[key] !== 'string') throw new ConfigError(`setting "${key}" must be a string`);
  }
  if (out.redis && !hasScheme(out.redis, ['redis:', 'rediss:'])) {
    throw new ConfigError(`setting "redis" must be a redis:// or rediss:// URL, or empty for a single process (got ${JSON.stringify(out.redis)})`);
  }
  if (out.clusterAddress && !hasScheme(out.clusterAddress, ['ws:', 'wss:'])) {
    throw new ConfigError(`setting "clusterAddress" must be a ws:// or wss:// URL (got ${JSON.stringify(out.clusterAddress)})`);
  }
  if (out.clusterNodeId && !/^[A-Za-z0-9._-]{1,64}$/.test(out.clusterNodeId)) {
    throw new ConfigError(`setting "clusterNodeId" must be 1 to 64 of A-Z a-z 0-9 . _ - (got ${JSON.stringify(out.clusterNodeId)})`);
  }
  if (out.clusterNodeTtlMs < 2 * out.clusterHeartbeatMs) {
    throw new ConfigError(`setting "clusterNodeTtlMs" must be at least twice "clusterHeartbeatMs" (${2 * out.clusterHeartbeatMs}), so one late heartbeat does not end a node (got ${out.clusterNodeTtlMs})`);
  }
  if (out.clusterSecret && (out.clusterSecret.length < 16 || /\s/.test(out.clusterSecret))) {
    throw new ConfigError('setting "clusterSecret" must be at least 16 characters without spaces (or empty to derive it from the first API key)');
  }
  if (!out.redis) return;
  if (!out.clusterNodeId) out.clusterNodeId = randomBytes(8).toString('hex');
  if (out.port !== 0) out.clusterAddress = clusterAddressFor(out, out.port);
  else if (WILDCARD_HOSTS.has(out.host)) clusterAddressFor(out, 0);
  if (!out.clusterSecret) out.clusterSecret = createHmac('sha256', Object.values(out.apiKeys)[0]!).update(CLUSTER_SECRET_LABEL).digest('base64url');
}

function hasScheme(url: string, schemes: readonly string[]): boolean {
  try {
    const parsed = new URL(url);
    return schemes.includes(parsed.protocol) && Boolean(parsed.hostname);
  } catch {
    return false;
  }
}

/** TLS, metrics and drain settings. */
function checkOperations(out: ServerConfig): void {
  for (const key of ['tlsCertFile', 'tlsKeyFile', 'metricsToken'] as const) {
    if (typeof out[key] !== 'string') throw new ConfigError(`setting "${key}" must be a string`);
  }
  if (Boolean(out.tlsCertFile) !== Boolean(out.tlsKeyFile)) throw new ConfigError('settings "tlsCertFile" and "tlsKeyFile" go together: set both (HTTPS and WSS) or neither');
  if (typeof out.metrics !== 'boolean') throw new ConfigError('setting "metrics" must be a boolean');
  if (out.metricsToken && (out.metricsToken.length < 16 || /\s/.test(out.metricsToken))) {
    throw new ConfigError('setting "metricsToken" must be at least 16 characters without spaces (or empty for an open /metrics)');
  }
}

/** WebRTC settings: a port range that is a range, an address, ICE servers browsers accept. */
function checkWebRtc(out: ServerConfig): void {
  if (typeof out.webrtc !== 'boolean') throw new ConfigError('setting "webrtc" must be a boolean');
  if (out.webrtcPortMin > out.webrtcPortMax || (out.webrtcPortMin === 0) !== (out.webrtcPortMax === 0)) {
    throw new ConfigError('settings "webrtcPortMin" and "webrtcPortMax" must both be 0 (any port) or a range with min <= max');
  }
  if (typeof out.webrtcAnnouncedAddress !== 'string' || /\s/.test(out.webrtcAnnouncedAddress)) {
    throw new ConfigError('setting "webrtcAnnouncedAddress" must be an IP address or host name (or empty)');
  }
  const servers = out.webrtcIceServers;
  const url = (u: unknown) => typeof u === 'string' && /^(stun|stuns|turn|turns):[^\s]+$/.test(u);
  if (!Array.isArray(servers) || !servers.every((s) => typeof s === 'object' && s !== null && (url(s.urls) || (Array.isArray(s.urls) && s.urls.length > 0 && s.urls.every(url))) && ['undefined', 'string'].includes(typeof s.username) && ['undefined', 'string'].includes(typeof s.credential))) {
    throw new ConfigError('setting "webrtcIceServers" must be an array of { urls, username?, credential? } with stun:, stuns:, turn: or turns: URLs');
  }
  out.webrtcIceServers = Object.freeze(servers.map((s) => Object.freeze({ ...s })));
}

function checkWebhookUrls(value: unknown): string[] {
  if (!Array.isArray(value)) throw new ConfigError('setting "webhookUrls" must be an array of http(s) URLs');
  return value.map((url) => {
    let parsed: URL | undefined;
    try {
      parsed = typeof url === 'string' ? new URL(url) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
      throw new ConfigError(`setting "webhookUrls" must hold http(s) URLs (got ${JSON.stringify(url)})`);
    }
    return parsed.href;
  });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
