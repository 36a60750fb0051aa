/**
 * The server process edge: HTTP (health, later the server API) and WebSocket upgrade on one port,
 * the hello/resume handshake, and the wiring of sessions to the core {@link Hub}.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { pino, type Logger } from 'pino';
import {
  BackchannelError,
  EARLY_SUBPROTOCOL,
  Emitter,
  ErrorCode,
  LeaveReason,
  PROTOCOL_VERSION,
  SUBPROTOCOL,
  encodeControlFrame,
  parseControlBody,
  takeEarlyFrames,
  validateClientMessage,
  type ClientMessage,
  type ResumeResult,
  type WelcomeResult,
} from '@backchannel/protocol';
import type { WebhookStats } from '@backchannel/server-sdk';
import { ApiRouter } from './api/router.js';
import { verifyAccessToken } from './auth.js';
import { ConfigError, ConfigErrorCode, clusterAddressFor, resolveConfig, type ServerConfig } from './config.js';
import { DemoRoutes } from './demo.js';
import type { HubEvent } from './core/events.js';
import { createMetricsSink } from './core/metrics.js';
import { PrometheusMetrics } from './metrics/prometheus.js';
import { OpsRoutes } from './ops-routes.js';
import { loadTlsFiles, type TlsFiles } from './tls.js';
import { Hub, reason } from './core/hub.js';
import type { Peer } from './core/peer.js';
import type { FrameSocket } from './transport/frame-socket.js';
import { WsFrameSocket } from './transport/frame-socket.js';
import { Handshake, type HandshakeContext } from './transport/handshake.js';
import { CloseCode, Session, type QueueBudget, type SessionHandlers, type SessionOptions } from './transport/session.js';
import { WebRtcGateway, type WebRtcCounters } from './transport/webrtc.js';
import { registerWebRtcMetrics } from './metrics/webrtc.js';
import { SERVER_VERSION } from './version.js';
import { WebhookDispatcher } from './webhooks/dispatcher.js';
import { roomOf } from './webhooks/events.js';
import { Cluster } from './cluster/cluster.js';
import { LINK_PATH } from './cluster/links.js';
import type { RedisClusterStore } from './cluster/redis-store.js';

/** Events of a running server. */
export type ServerEvents = {
  /** Every internal core event (call.incoming, participant.joined, …). */
  event: [HubEvent];
  /** The server finished shutting down. */
  closed: [];
};

/** Options for {@link startServer} beyond the configuration. */
export interface StartOptions {
  /** Logger to use (default: pino JSON to stdout at `config.logLevel`). */
  logger?: Logger;
}

/** A running Backchannel server. */
export class BackchannelServer extends Emitter<ServerEvents> {
  readonly config: Readonly<ServerConfig>;
  readonly hub: Hub;
  readonly log: Logger;
  /** Webhook delivery (signed POSTs of every core event to the configured URLs). */
  readonly #webhooks: WebhookDispatcher;
  readonly #api: ApiRouter;
  readonly #demo: DemoRoutes;
  readonly #http: HttpServer | HttpsServer;
  /** The certificate in use, when the server speaks TLS. */
  #tls: TlsFiles | undefined;
  readonly #metrics: PrometheusMetrics | undefined;
  readonly #ops: OpsRoutes;
  /** Cluster mode (setting `redis`): set once this node has registered. */
  #cluster: Cluster | undefined;
  #store: RedisClusterStore | undefined;
  /** Set once draining began (see `drain()`). */
  #draining: Promise<void> | undefined;
  /** Ends the drain's wait: rooms finished, time is up, or `close()` was called. */
  #drainWait: (() => void) | undefined;
  readonly #wss: WebSocketServer;
  /** Peer connections of the WebRTC datagram path; absent when WebRTC is off or unavailable. */
  readonly #webrtc: WebRtcGateway | undefined;
  /** Every open socket, in its handshake or carrying a session. */
  readonly #sockets = new Set<WsFrameSocket>();
  readonly #peers = new Map<Session, Peer>();
  readonly #overflowing = new WeakSet<Session>();
  /** The session each socket carries (once its handshake is done). */
  readonly #sessionOf = new WeakMap<FrameSocket, Session>();
  /** Bytes queued by every session together (the server-wide budget). */
  readonly #budget: QueueBudget = { bytes: 0 };
  /** Open sockets per remote address. */
  readonly #perAddress = new Map<string, number>();
  /** Early frames taken from an upgrade request, until its socket exists. */
  readonly #early = new WeakMap<IncomingMessage, Uint8Array[]>();
  /** Control-request token buckets, per session. */
  readonly #controlBuckets = new WeakMap<Session, { tokens: number; last: number }>();
  readonly #sessionOptions: SessionOptions;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #closing: Promise<void> | undefined;
  #ready = false;
  #drained: (() => void) | undefined;

  constructor(config: Readonly<ServerConfig>, options: StartOptions = {}) {
    super();
    this.config = config;
    this.log = options.logger ?? pino({ level: config.logLevel, base: { service: 'backchannel' } });
    this.#webhooks = new WebhookDispatcher(config, this.log);
    this.#sessionOptions = Object.freeze({
      socketHighWaterBytes: config.socketHighWaterBytes,
      ackEvery: config.ackEvery,
      ackEveryBytes: config.ackEveryBytes,
      ackDelayMs: config.ackDelayMs,
      maxBadFrames: config.maxBadFrames,
      sendWindowBytes: config.sendWindowBytes,
      sendWindowFrames: config.sendWindowFrames,
      replayBufferMaxBytes: config.replayBufferMaxBytes,
      budget: this.#budget,
    });
    const sink = createMetricsSink();
    this.hub = new Hub({
      config,
      emit: (e) => this.#onHubEvent(e),
      metrics: sink,
      queuedBytes: () => this.#budget.bytes,
      warn: (fields, message) => this.log.warn(fields, message),
    });
    this.#metrics = config.metrics
      ? new PrometheusMetrics({
          hub: this.hub,
          sink,
          connections: () => this.#sockets.size,
          eachQueue: (visit) => {
            for (const session of this.#peers.keys()) visit(session.queuedTotal);
          },
          webhooks: () => this.#webhooks.counters(),
          ready: () => this.#state() === 'ready',
        })
      : undefined;
    this.#webrtc = WebRtcGateway.create({ config, log: this.log });
    if (this.#webrtc && this.#metrics) registerWebRtcMetrics(this.#metrics.registry, this.#webrtc);
    this.#ops = new OpsRoutes({ metrics: this.#metrics, metricsToken: config.metricsToken, state: () => this.#state(), log: this.log });
    this.#api = new ApiRouter({ hub: this.hub, config, log: this.log, webhookStats: () => this.#webhooks.stats(), closing: () => this.#closing !== undefined });
    this.#demo = new DemoRoutes({ config, log: this.log });
    // A bad certificate or key fails here, before the port is bound, with a coded ConfigError.
    this.#tls = config.tlsCertFile ? loadTlsFiles(config.tlsCertFile, config.tlsKeyFile) : undefined;
    const onRequest = (req: IncomingMessage, res: ServerResponse) => this.#onHttp(req, res);
    this.#http = this.#tls ? createHttpsServer({ cert: this.#tls.cert, key: this.#tls.key }, onRequest) : createHttpServer(onRequest);
    // A connection that sends no complete request (or upgrade) in time is not held: Node's own
    // header timeout does not cover a connection that sends nothing at all.
    this.#http.headersTimeout = config.httpHeadersTimeoutMs;
    this.#http.requestTimeout = Math.max(30_000, config.httpHeadersTimeoutMs);
    const firstRequest = new WeakMap<object, ReturnType<typeof setTimeout>>();
    this.#http.on(this.#tls ? 'secureConnection' : 'connection', (socket: { destroy(): void }) => {
      firstRequest.set(socket, setTimeout(() => socket.destroy(), config.httpHeadersTimeoutMs));
    });
    const started = (req: IncomingMessage) => clearTimeout(firstRequest.get(req.socket));
    this.#http.prependListener('request', started);
    this.#http.prependListener('upgrade', started);
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.maxFrameBytes,
      perMessageDeflate: false,
      // A client's first frames may come in the upgrade request (PROTOCOL.md, "Early frames").
      handleProtocols: (offered, req) => {
        const early = takeEarlyFrames(offered);
        // Not taken (or none offered): the plain subprotocol if offered; never `backchannel.early`.
        if (early === null) return offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false;
        if (early === undefined) return offered.has(SUBPROTOCOL) ? SUBPROTOCOL : (offered.values().next().value ?? false); // as `ws` does by default
        this.#early.set(req, early);
        return EARLY_SUBPROTOCOL;
      },
    });
    this.#http.on('upgrade', (req, socket, head) => {
      if ((req.url ?? '').split('?')[0] === LINK_PATH) {
        if (this.#cluster) return this.#cluster.upgrade(req, socket, head);
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      if (this.#closing || (this.config.redis && !this.#cluster)) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
        return;
      }
      const address = (socket as { remoteAddress?: string }).remoteAddress ?? '';
      if ((this.#perAddress.get(address) ?? 0) >= config.maxConnectionsPerAddress) {
        const body = JSON.stringify({ code: ErrorCode.TooManyConnections, message: `more than ${config.maxConnectionsPerAddress} connections from ${address}` });
        socket.end(`HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onSocket(ws, req));
    });
  }

  /** Port actually bound (useful with port 0). */
  get port(): number {
    return (this.#http.address() as AddressInfo | null)?.port ?? this.config.port;
  }

  /** `ws://host:port` of this server (`wss://` with TLS). */
  get url(): string {
    const host = this.config.host.includes(':') ? `[${this.config.host}]` : this.config.host;
    return `${this.#tls ? 'wss' : 'ws'}://${host}:${this.port}`;
  }

  /**
   * Re-reads `tlsCertFile` and `tlsKeyFile` and serves the new certificate to new connections;
   * connections already open keep theirs and are not interrupted. The CLI calls it on SIGHUP.
   * Throws a {@link ConfigError} (`tls-file-unreadable`, `tls-invalid`, `tls-key-mismatch`) and keeps
   * the current certificate if the files are bad; returns the new certificate's subject, expiry
   * and SHA-256 fingerprint.
   */
  reloadTls(): { subject: string; validTo: string; fingerprint: string } {
    if (!this.#tls) throw new ConfigError('this server does not use TLS (set tlsCertFile and tlsKeyFile)', { code: ConfigErrorCode.Invalid });
    const tls = loadTlsFiles(this.config.tlsCertFile, this.config.tlsKeyFile);
    (this.#http as HttpsServer).setSecureContext({ cert: tls.cert, key: tls.key });
    this.#tls = tls;
    const info = { subject: tls.subject, validTo: tls.validTo, fingerprint: tls.fingerprint };
    this.log.info(info, 'TLS certificate reloaded');
    return info;
  }

  /** Whether the server takes new participants (`/readyz`): `ready` only between `listen()` and drain or close. */
  #state(): 'starting' | 'ready' | 'draining' | 'stopping' | 'cluster-unavailable' {
    if (this.#closing) return 'stopping';
    if (this.#draining) return 'draining';
    if (!this.#ready) return 'starting';
    return this.#store && !this.#store.up ? 'cluster-unavailable' : 'ready';
  }

  /** Delivery counters of each configured webhook URL (also served at `GET /api/v1/webhooks`). */
  webhookStats(): WebhookStats {
    return this.#webhooks.stats();
  }

  /**
   * The WebRTC datagram path's counters and open peer connections (docs/webrtc.md); `undefined`
   * when this server offers no WebRTC.
   */
  webrtcStats(): (Omit<WebRtcCounters, 'negotiationMs'> & { peerConnections: number; negotiationMs: number[] }) | undefined {
    const w = this.#webrtc;
    return w && { ...w.counters, negotiationMs: [...w.counters.negotiationMs], peerConnections: w.size };
  }

  /** Binds and starts accepting connections. */
  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#http.once('error', reject);
      this.#http.listen(this.config.port, this.config.host, () => {
        this.#http.off('error', reject);
        resolve();
      });
    });
    if (this.config.redis) await this.#joinCluster();
    this.#pingTimer = setInterval(() => this.#pingAll(), this.config.pingIntervalMs);
    this.#pingTimer.unref();
    this.#ready = true;
    const tls = this.#tls && { subject: this.#tls.subject, validTo: this.#tls.validTo, fingerprint: this.#tls.fingerprint };
    this.log.info({ url: this.url, protocol: PROTOCOL_VERSION, version: SERVER_VERSION, ...(tls ? { tls } : {}) }, 'backchannel server listening');
  }

  /** Registers this node in Redis and opens it to the other nodes (cluster mode; docs/cluster.md). */
  async #joinCluster(): Promise<void> {
    const cpuAt = { at: performance.now(), usage: process.cpuUsage() };
    // Loaded here, not with the server: the Redis client is the largest module there is (about
    // 20 MiB of resident memory), and a single server has no use for it.
    const { RedisClusterStore } = await import('./cluster/redis-store.js');
    const store = await RedisClusterStore.start({
      redisUrl: this.config.redis,
      nodeId: this.config.clusterNodeId,
      url: this.config.clusterAddress || clusterAddressFor(this.config, this.port),
      heartbeatMs: this.config.clusterHeartbeatMs,
      ttlMs: this.config.clusterNodeTtlMs,
      log: this.log,
      load: () => {
        const now = performance.now();
        const usage = process.cpuUsage();
        const cpu = (usage.user - cpuAt.usage.user + usage.system - cpuAt.usage.system) / 1000 / Math.max(1, now - cpuAt.at);
        cpuAt.at = now;
        cpuAt.usage = usage;
        return { participants: this.#peers.size, rooms: this.hub.rooms.size, cpu };
      },
    });
    this.#store = store;
    this.#cluster = new Cluster({
      hub: this.hub,
      config: this.config,
      log: this.log,
      store,
      handleLocal: (peer, msg) => {
        const session = peer.link as Session;
        if (!session.closed) this.#handle(session, peer, msg);
      },
      reportError: (peer, error) => (peer.link as Session).reportError(error),
      emitForeign: (event, after) => {
        this.#webhooks.continueFrom(roomOf(event), after);
        this.#webhooks.handle(event);
        this.emit('event', event);
      },
      draining: () => this.#draining !== undefined,
    });
    this.#api.joinCluster(this.#cluster);
    this.log.info({ node: store.self.id, no: store.self.no, clusterAddress: store.self.url }, 'joined the cluster');
  }

  /** The cluster this node is part of, if any (cluster mode). */
  get cluster(): Cluster | undefined {
    return this.#cluster;
  }

  /**
   * Drains, then shuts down: `/readyz` answers 503 at once; new clients (hello) are refused with
   * `server-shutdown`, and so are new joins and calls (`conf.join`, `call.make`); rooms and calls
   * already going on continue — clients may still resume, accept ringing calls, open sessions and
   * send data — until every room is empty or `drainTimeoutMs` has passed. Then {@link close} ends
   * the rest with `server-shutdown` and flushes webhooks. The CLI drains on SIGTERM.
   */
  drain(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#draining ??= this.#drain();
    return this.#draining;
  }

  async #drain(): Promise<void> {
    const { drainTimeoutMs } = this.config;
    this.#store?.setDraining(true);
    this.log.info({ rooms: this.hub.rooms.size, participants: this.hub.peers.size, drainTimeoutMs }, 'draining: taking no new participants, joins or calls');
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      this.#drainWait = resolve;
      timer = setTimeout(resolve, drainTimeoutMs);
      this.#checkDrained();
    });
    clearTimeout(timer);
    this.#drainWait = undefined;
    if (!this.#closing) this.log.info({ participants: this.#inRooms() }, this.#inRooms() === 0 ? 'drained: every room has finished' : 'drain time is up');
    await this.close();
  }

  /** Participants in rooms (a participant in two rooms counts twice). */
  #inRooms(): number {
    let n = 0;
    for (const room of this.hub.rooms.values()) n += room.size;
    return n;
  }

  #checkDrained(): void {
    if (this.#drainWait && this.#inRooms() === 0) this.#drainWait();
  }

  /**
   * Graceful shutdown: stop accepting, end calls and rooms with `server-shutdown`, say goodbye to
   * every client, wait (bounded) for sockets to close, and flush pending webhooks (bounded by
   * `webhookFlushTimeoutMs`, in parallel with the socket wait).
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    this.#drainWait?.();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#ready = false;
    this.log.info({ connections: this.#sockets.size }, 'shutting down');
    if (this.#pingTimer) clearInterval(this.#pingTimer);
    const httpClosed = new Promise<void>((resolve) => this.#http.close(() => resolve()));
    this.hub.shutdown();
    await this.#cluster?.close().catch((error: unknown) => this.log.warn({ err: error }, 'leaving the cluster failed'));
    this.#webrtc?.closeAll();
    const webhooksFlushed = this.#webhooks.flush(this.config.webhookFlushTimeoutMs);
    // Sockets still in their handshake (sessions were closed by the hub).
    for (const socket of this.#sockets) socket.close(CloseCode.GoingAway, ErrorCode.ServerShutdown);
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, this.config.shutdownTimeoutMs).unref());
    const allClosed = this.#sockets.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.#drained = resolve));
    await Promise.race([allClosed, deadline]);
    for (const socket of this.#sockets) socket.terminate();
    await webhooksFlushed;
    this.#http.closeAllConnections();
    await httpClosed;
    this.log.info('shut down');
    this.emit('closed');
  }

  #onHubEvent(event: HubEvent): void {
    this.log.debug({ event }, event.type);
    this.#cluster?.onHubEvent(event);
    if (!this.#cluster?.muted) this.#webhooks.handle(event);
    this.emit('event', event);
    if (this.#drainWait && (event.type === 'participant.left' || event.type === 'call.ended' || event.type === 'conference.ended')) this.#checkDrained();
  }

  #onHttp(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    if (ApiRouter.owns(path)) return this.#api.handle(req, res);
    if (OpsRoutes.owns(path)) return this.#ops.handle(req, res, path);
    if (DemoRoutes.owns(path)) return this.#demo.handle(req, res);
    if (path === '/healthz') {
      const ok = this.#ready && !this.#closing;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: ok ? 'ok' : 'unavailable', protocol: PROTOCOL_VERSION, version: SERVER_VERSION }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ code: 'not-found', message: `no route for ${req.method} ${path}` }));
  }

  #onSocket(ws: WebSocket, req: IncomingMessage): void {
    const socket = new WsFrameSocket(ws, (s) => {
      this.#sockets.delete(s);
      const n = (this.#perAddress.get(s.remoteAddress) ?? 1) - 1;
      if (n > 0) this.#perAddress.set(s.remoteAddress, n);
      else this.#perAddress.delete(s.remoteAddress);
      if (this.#sockets.size === 0) this.#drained?.();
    });
    this.#sockets.add(socket);
    this.#perAddress.set(socket.remoteAddress, (this.#perAddress.get(socket.remoteAddress) ?? 0) + 1);
    const handshake = new Handshake(socket, this.#handshakeContext);
    const early = this.#early.get(req);
    if (early) {
      this.#early.delete(req);
      handshake.early(early);
    }
  }

  /** What a socket's handshake needs from the server. */
  readonly #handshakeContext: HandshakeContext = {
    config: () => this.config,
    hello: (socket, msg) => this.#hello(socket, msg),
    resume: (socket, msg) => this.#resume(socket, msg),
    refused: (code) => this.#metrics?.handshakeFailed(code),
  };

  /**
   * Handles `hello`: verifies the token, then creates the participant and its session; resolves
   * with the session's receiver of frames (for those pipelined behind the hello).
   */
  async #hello(socket: FrameSocket, msg: ClientMessage<'hello'>): Promise<(data: Uint8Array, binary: boolean) => void> {
    const identity = await verifyAccessToken(msg.token, this.config.apiKeys);
    if (socket.closed) return () => {};
    if (this.#closing) throw new BackchannelError(ErrorCode.ServerShutdown, 'the server is shutting down');
    if (this.#draining) throw new BackchannelError(ErrorCode.ServerShutdown, 'the server is draining: it takes no new clients (connect to another one)');
    const session = new Session(socket, this.#sessionOptions, this.#sessionHandlers);
    this.#sessionOf.set(socket, session);
    const peer = this.hub.handleConnect(identity, { ...msg.capabilities, protocol: msg.protocol }, session);
    this.#peers.set(session, peer);
    this.#cluster?.peerConnected(peer);
    const welcome: WelcomeResult = {
      participantId: peer.id,
      sid: peer.sid,
      userId: peer.userId,
      displayName: peer.displayName,
      protocol: msg.protocol,
      serverVersion: SERVER_VERSION,
      limits: {
        maxMessageBytes: this.config.maxMessageBytes,
        chunkBytes: this.config.chunkBytes,
        maxSessionsPerParticipant: this.config.maxSessionsPerParticipant,
        maxMetadataBytes: this.config.maxMetadataBytes,
        sendWindowBytes: this.config.sendWindowBytes,
        sendWindowFrames: this.config.sendWindowFrames,
      },
      resume: { credential: peer.resumeCredential, windowMs: this.config.resumeWindowMs },
      expiresAt: identity.expiresAt,
      grants: { ...identity.grants },
      ...(this.#webrtc ? { webrtc: this.#webrtc.grant() } : {}),
    };
    // The handshake reply is not numbered: the session's numbering starts after it.
    socket.send(encodeControlFrame(JSON.stringify({ t: 'ok', re: msg.id, data: welcome })));
    this.hub.flushAfterReply(peer);
    this.log.debug({ participantId: peer.id, userId: peer.userId }, 'connected');
    return (data, binary) => session.receive(data, binary);
  }

  /** Handles `resume`: checks the credential and the replay position, then continues the session on `socket`. */
  #resume(socket: FrameSocket, msg: ClientMessage<'resume'>): void {
    const peer = this.hub.findResumable(msg.participantId, msg.credential);
    const session = peer.link as Session;
    if (!session.canResume(msg.received)) {
      throw new BackchannelError(ErrorCode.ResumeFailed, `the frames after ${msg.received} are no longer held; this participant cannot be resumed`);
    }
    this.hub.handleResumed(peer, msg.next);
    const result: ResumeResult = { received: session.received, windowMs: this.config.resumeWindowMs };
    socket.send(encodeControlFrame(JSON.stringify({ t: 'ok', re: msg.id, data: result })));
    session.resume(socket, msg.received);
    this.#sessionOf.set(socket, session);
    this.#metrics?.resumed();
    this.log.debug({ participantId: peer.id, resumes: session.stats.resumes }, 'resumed');
  }

  /** Per-connection rate limit of control requests (a token bucket). */
  #takeControlToken(session: Session): boolean {
    const { controlRateLimit: rate, controlRateBurst: burst } = this.config;
    if (rate === 0) return true;
    const now = Date.now();
    let b = this.#controlBuckets.get(session);
    if (!b) this.#controlBuckets.set(session, (b = { tokens: burst, last: now }));
    b.tokens = Math.min(burst, b.tokens + ((now - b.last) * rate) / 1000);
    b.last = now;
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  /** `auth.refresh`: verifies the new token, then applies it to the participant. */
  async #refresh(session: Session, peer: Peer, msg: ClientMessage<'auth.refresh'>): Promise<void> {
    try {
      const identity = await verifyAccessToken(msg.token, this.config.apiKeys);
      session.sendControl({ t: 'ok', re: msg.id, data: this.hub.handleTokenRefresh(peer, identity) });
      this.#cluster?.peerRefreshed(peer);
    } catch (error) {
      session.sendControl({ t: 'err', re: msg.id, error: toBackchannelError(error, this.log).toJSON() });
    }
  }

  readonly #sessionHandlers: SessionHandlers = {
    control: (session, body) => {
      const peer = this.#peers.get(session);
      if (!peer) return;
      let msg: ClientMessage;
      try {
        msg = validateClientMessage(parseControlBody(body));
      } catch (error) {
        const err = error as BackchannelError;
        const id = err.details?.id;
        if (typeof id === 'number') session.sendControl({ t: 'err', re: id, error: { code: err.code, message: err.message } });
        else session.reportError(err);
        return;
      }
      if (!this.#takeControlToken(session)) {
        const message = `more than ${this.config.controlRateLimit} requests per second (burst ${this.config.controlRateBurst})`;
        session.sendControl({ t: 'err', re: msg.id, error: { code: ErrorCode.RateLimited, message } });
        return;
      }
      if (msg.t === 'auth.refresh') return void this.#refresh(session, peer, msg);
      if (msg.t === 'rtc.offer' || msg.t === 'rtc.candidate' || msg.t === 'rtc.close') return void this.#rtc(session, msg);
      this.#request(session, peer, msg);
    },
    data: (session, frame, raw) => {
      const peer = this.#peers.get(session);
      if (!peer) return;
      try {
        if (this.#cluster?.routeData(peer, frame.room, raw)) return;
        this.hub.handleData(peer, frame, raw);
      } catch (error) {
        session.reportError(toBackchannelError(error, this.log));
      }
    },
    lost: (session, code, reason) => {
      const peer = this.#peers.get(session);
      if (!peer) return;
      this.log.debug({ participantId: peer.id, code, reason }, 'connection lost; waiting for a resume');
      this.#webrtc?.close(session); // the client negotiates again after its resume
      this.hub.handleLinkLost(peer);
    },
    closed: (session, deliberate) => {
      const peer = this.#peers.get(session);
      if (!peer) return;
      this.#peers.delete(session);
      this.#webrtc?.close(session);
      this.hub.handleDisconnect(peer, deliberate ? LeaveReason.Left : LeaveReason.ConnectionLost);
      this.log.debug({ participantId: peer.id, deliberate }, 'session closed');
    },
    overflow: (session) => {
      const peer = this.#peers.get(session);
      if (!peer || this.#overflowing.has(session)) return;
      this.#overflowing.add(session);
      // Not from inside whatever sent the frame that overflowed: the room logic may be mid-loop.
      // A client that is away overflowed its replay buffer; a connected one did not read (or acknowledge).
      const away = session.socket === undefined;
      setImmediate(() => {
        this.log.info({ participantId: peer.id, bytes: session.unackedBytes, away }, 'output overflow; ending the participant');
        const why = away
          ? reason(ErrorCode.ResumeBufferOverflow, `more than ${this.config.replayBufferMaxBytes} bytes were held for this client while its connection was lost`)
          : reason(ErrorCode.ClientTooSlow, `more than ${this.config.replayBufferMaxBytes} bytes waited for this client to read them`);
        session.close(why, CloseCode.ResumeBufferOverflow);
        if (!away) session.terminate(); // it does not read: no closing handshake to wait for
        this.hub.handleDisconnect(peer, away ? LeaveReason.ResumeBufferOverflow : LeaveReason.ClientTooSlow);
      });
    },
  };

  /** WebRTC signalling (docs/webrtc.md), answered at the edge: the core never sees it. */
  async #rtc(session: Session, msg: ClientMessage<'rtc.offer' | 'rtc.candidate' | 'rtc.close'>): Promise<void> {
    try {
      const gateway = this.#webrtc;
      if (!gateway) {
        const why = this.config.webrtc ? 'its native library (node-datachannel) is not installed' : 'it is turned off (setting webrtc)';
        throw new BackchannelError(ErrorCode.WebRtcUnavailable, `this server offers no WebRTC: ${why}`);
      }
      let data: unknown = {};
      if (msg.t === 'rtc.offer') data = await gateway.offer(session, msg.sdp);
      else if (msg.t === 'rtc.candidate') gateway.candidate(session, msg.candidate, msg.mid);
      else gateway.close(session);
      session.sendControl({ t: 'ok', re: msg.id, data });
    } catch (error) {
      session.sendControl({ t: 'err', re: msg.id, error: toBackchannelError(error, this.log).toJSON() });
    }
  }

  #request(session: Session, peer: Peer, msg: ClientMessage): void {
    if (this.#draining && (msg.t === 'conf.join' || msg.t === 'call.make')) {
      const err = new BackchannelError(ErrorCode.ServerShutdown, `the server is draining: it takes no new ${msg.t === 'call.make' ? 'calls' : 'joins'}`);
      session.sendControl({ t: 'err', re: msg.id, error: err.toJSON() });
      return;
    }
    // In a cluster, a request about a room or call hosted on another node goes there.
    if (this.#cluster?.route(peer, msg)) return;
    this.#handle(session, peer, msg);
  }

  /** Handles a request in this node's core and replies. */
  #handle(session: Session, peer: Peer, msg: ClientMessage): void {
    try {
      const timed = this.#metrics && (msg.t === 'conf.join' || msg.t === 'call.accept');
      const started = timed ? performance.now() : 0;
      const data = this.hub.handleRequest(peer, msg);
      session.sendControl({ t: 'ok', re: msg.id, data });
      if (timed) this.#metrics!.joined(msg.t === 'conf.join' ? 'conference' : 'call', performance.now() - started);
    } catch (error) {
      const err = toBackchannelError(error, this.log);
      session.sendControl({ t: 'err', re: msg.id, error: err.toJSON() });
    } finally {
      this.hub.flushAfterReply(peer);
    }
  }

  /** Drops every socket that showed no sign of life since the last round, and probes the others. */
  #pingAll(): void {
    for (const socket of this.#sockets) {
      this.#sessionOf.get(socket)?.trim();
      if (!socket.alive) {
        // Reading from it stopped because it did not read what it was sent: that is not a lost
        // connection to wait for, but a client that does not read (no resume).
        const session = this.#sessionOf.get(socket);
        if (session?.socket === socket && session.outputStuck) {
          this.#sessionHandlers.overflow(session);
          continue;
        }
        this.log.info({ remoteAddress: socket.remoteAddress }, 'dropping a connection that answered no ping');
        socket.terminate();
        continue;
      }
      socket.alive = false;
      socket.ping();
    }
  }
}

/** The error a failed request or handshake reports: its own if coded, else `internal-error` (logged). */
export function toBackchannelError(error: unknown, log: Logger): BackchannelError {
  if (error instanceof BackchannelError) return error;
  log.error({ err: error }, 'internal error');
  return new BackchannelError(ErrorCode.InternalError, 'internal server error', { cause: error });
}

/** Validates `config`, starts a server and resolves once it is listening. */
export async function startServer(config: Partial<ServerConfig> = {}, options: StartOptions = {}): Promise<BackchannelServer> {
  const server = new BackchannelServer(resolveConfig(config), options);
  await server.listen();
  return server;
}
