/**
 * The server process edge: HTTP (health, later the server API) and WebSocket upgrade on one port,
 * the hello handshake, and the wiring of connections to the core {@link Hub}.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { pino, type Logger } from 'pino';
import {
  BackchannelError,
  Emitter,
  ErrorCode,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  parseControlBody,
  validateClientMessage,
  type ClientMessage,
  type WelcomeResult,
} from '@backchannel/protocol';
import type { WebhookStats } from '@backchannel/server-sdk';
import { ApiRouter } from './api/router.js';
import { verifyAccessToken } from './auth.js';
import { resolveConfig, type ServerConfig } from './config.js';
import type { HubEvent } from './core/events.js';
import { Hub } from './core/hub.js';
import type { Peer } from './core/peer.js';
import { CloseCode, Connection } from './transport/connection.js';
import { SERVER_VERSION } from './version.js';
import { WebhookDispatcher } from './webhooks/dispatcher.js';

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
  readonly #http: HttpServer;
  readonly #wss: WebSocketServer;
  readonly #connections = new Set<Connection>();
  readonly #peers = new Map<Connection, Peer>();
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #closing: Promise<void> | undefined;
  #ready = false;
  #drained: (() => void) | undefined;

  constructor(config: Readonly<ServerConfig>, options: StartOptions = {}) {
    super();
    this.config = config;
    this.log = options.logger ?? pino({ level: config.logLevel, base: { service: 'backchannel' } });
    this.#webhooks = new WebhookDispatcher(config, this.log);
    this.hub = new Hub({ config, emit: (e) => this.#onHubEvent(e) });
    this.#api = new ApiRouter({ hub: this.hub, config, log: this.log, webhookStats: () => this.#webhooks.stats(), closing: () => this.#closing !== undefined });
    this.#http = createHttpServer((req, res) => this.#onHttp(req, res));
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: config.maxFrameBytes, perMessageDeflate: false });
    this.#http.on('upgrade', (req, socket, head) => {
      if (this.#closing) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onSocket(ws));
    });
  }

  /** Port actually bound (useful with port 0). */
  get port(): number {
    return (this.#http.address() as AddressInfo | null)?.port ?? this.config.port;
  }

  /** `ws://host:port` of this server. */
  get url(): string {
    const host = this.config.host.includes(':') ? `[${this.config.host}]` : this.config.host;
    return `ws://${host}:${this.port}`;
  }

  /** Delivery counters of each configured webhook URL (also served at `GET /api/v1/webhooks`). */
  webhookStats(): WebhookStats {
    return this.#webhooks.stats();
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
    this.#pingTimer = setInterval(() => this.#pingAll(), this.config.pingIntervalMs);
    this.#pingTimer.unref();
    this.#ready = true;
    this.log.info({ url: this.url, protocol: PROTOCOL_VERSION, version: SERVER_VERSION }, 'backchannel server listening');
  }

  /**
   * Graceful shutdown: stop accepting, end calls and rooms with `server-shutdown`, say goodbye to
   * every client, wait (bounded) for sockets to close, and flush pending webhooks (bounded by
   * `webhookFlushTimeoutMs`, in parallel with the socket wait).
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#ready = false;
    this.log.info({ connections: this.#connections.size }, 'shutting down');
    if (this.#pingTimer) clearInterval(this.#pingTimer);
    const httpClosed = new Promise<void>((resolve) => this.#http.close(() => resolve()));
    this.hub.shutdown();
    const webhooksFlushed = this.#webhooks.flush(this.config.webhookFlushTimeoutMs);
    for (const conn of this.#connections) conn.close({ code: ErrorCode.ServerShutdown, message: 'the server is shutting down' }, CloseCode.GoingAway);
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, this.config.shutdownTimeoutMs).unref());
    const allClosed = this.#connections.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.#drained = resolve));
    await Promise.race([allClosed, deadline]);
    for (const conn of this.#connections) conn.terminate();
    await webhooksFlushed;
    this.#http.closeAllConnections();
    await httpClosed;
    this.log.info('shut down');
    this.emit('closed');
  }

  #onHubEvent(event: HubEvent): void {
    this.log.debug({ event }, event.type);
    this.#webhooks.handle(event);
    this.emit('event', event);
  }

  #onHttp(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    if (ApiRouter.owns(path)) return this.#api.handle(req, res);
    if (path === '/healthz') {
      const ok = this.#ready && !this.#closing;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: ok ? 'ok' : 'unavailable', protocol: PROTOCOL_VERSION, version: SERVER_VERSION }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ code: 'not-found', message: `no route for ${req.method} ${path}` }));
  }

  #onSocket(ws: WebSocket): void {
    let peer: Peer | undefined;
    let handshaking = false;
    const conn = new Connection(ws, this.config, {
      control: (c, body) => {
        let msg: ClientMessage;
        try {
          msg = validateClientMessage(parseControlBody(body));
        } catch (error) {
          const err = error as BackchannelError;
          const id = err.details?.id;
          if (typeof id === 'number') c.sendControl({ t: 'err', re: id, error: { code: err.code, message: err.message } });
          else c.reportError(err);
          return;
        }
        if (peer) return this.#request(c, peer, msg);
        if (msg.t !== 'hello') {
          c.sendControl({ t: 'err', re: msg.id, error: { code: ErrorCode.NotAuthenticated, message: 'send hello with an access token first' } });
          return;
        }
        if (handshaking) return;
        handshaking = true;
        void this.#hello(c, msg).then((p) => {
          peer = p;
          clearTimeout(helloTimer);
          if (p && c.closed) this.hub.handleDisconnect(p);
          else if (p) this.#peers.set(c, p);
        });
      },
      data: (c, frame, raw) => {
        if (!peer) return c.reportError(new BackchannelError(ErrorCode.NotAuthenticated, 'data before hello'));
        try {
          this.hub.handleData(peer, frame, raw);
        } catch (error) {
          c.reportError(toBackchannelError(error, this.log));
        }
      },
      closed: (c, code, reason) => {
        clearTimeout(helloTimer);
        this.#connections.delete(c);
        this.#peers.delete(c);
        if (this.#connections.size === 0) this.#drained?.();
        if (peer) this.hub.handleDisconnect(peer);
        this.log.debug({ participantId: peer?.id, code, reason }, 'connection closed');
      },
    });
    this.#connections.add(conn);
    const helloTimer = setTimeout(() => {
      if (!peer) conn.close({ code: ErrorCode.HelloTimeout, message: `no hello within ${this.config.helloTimeoutMs} ms` }, CloseCode.HelloTimeout);
    }, this.config.helloTimeoutMs);
  }

  async #hello(conn: Connection, msg: ClientMessage<'hello'>): Promise<Peer | undefined> {
    if (msg.protocol < MIN_PROTOCOL_VERSION || msg.protocol > PROTOCOL_VERSION) {
      const error = {
        code: ErrorCode.ProtocolVersionUnsupported,
        message: `protocol version ${msg.protocol} is not supported; this server speaks ${MIN_PROTOCOL_VERSION}–${PROTOCOL_VERSION}`,
        details: { min: MIN_PROTOCOL_VERSION, max: PROTOCOL_VERSION },
      };
      conn.sendControl({ t: 'err', re: msg.id, error });
      conn.close({ code: error.code, message: error.message }, CloseCode.ProtocolUnsupported);
      return undefined;
    }
    try {
      const identity = await verifyAccessToken(msg.token, this.config.apiKeys);
      if (conn.closed) return undefined;
      if (this.#closing) throw new BackchannelError(ErrorCode.ServerShutdown, 'the server is shutting down');
      const peer = this.hub.handleConnect(identity, { ...msg.capabilities, protocol: msg.protocol }, conn);
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
        },
        grants: { ...identity.grants },
      };
      conn.sendControl({ t: 'ok', re: msg.id, data: welcome });
      this.hub.flushAfterReply(peer);
      this.log.debug({ participantId: peer.id, userId: peer.userId }, 'connected');
      return peer;
    } catch (error) {
      const err = toBackchannelError(error, this.log);
      this.log.info({ code: err.code }, 'connection refused');
      conn.sendControl({ t: 'err', re: msg.id, error: { code: err.code, message: err.message } });
      conn.close({ code: err.code, message: err.message }, CloseCode.AuthFailed);
      return undefined;
    }
  }

  #request(conn: Connection, peer: Peer, msg: ClientMessage): void {
    try {
      const data = this.hub.handleRequest(peer, msg);
      conn.sendControl({ t: 'ok', re: msg.id, data });
    } catch (error) {
      const err = toBackchannelError(error, this.log);
      conn.sendControl({ t: 'err', re: msg.id, error: err.toJSON() });
    } finally {
      this.hub.flushAfterReply(peer);
    }
  }

  #pingAll(): void {
    for (const conn of this.#connections) {
      if (!conn.alive) {
        this.log.info('dropping connection that missed a ping');
        conn.terminate();
        continue;
      }
      conn.alive = false;
      conn.ping();
    }
  }
}

function toBackchannelError(error: unknown, log: Logger): BackchannelError {
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
