/**
 * The server API edge (`/api/v1/…` on the server's HTTP port): routing, Bearer-token auth with the
 * admin grant, the per-API-key rate limit, body validation against the route's schema, and error
 * answers `{ code, message }` with the matching HTTP status. In a cluster any node answers for the
 * whole cluster (cluster.ts). See docs/server-api.md.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Value } from '@sinclair/typebox/value';
import type { Logger } from 'pino';
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import type { WebhookStats } from '@backchannel/server-sdk';
import { verifyAccessToken, type Identity } from '../auth.js';
import type { ServerConfig } from '../config.js';
import type { Hub } from '../core/hub.js';
import { SERVER_VERSION } from '../version.js';
import { runInCluster, serveApi, type ApiClusterPort } from './cluster.js';
import { readJsonBody, sendError, sendJson } from './http.js';
import { buildOpenApi } from './openapi.js';
import { RateLimiter } from './rate-limit.js';
import { OPENAPI_PATH, ROUTES, type ApiContext, type Route } from './routes.js';

/** URL prefix of the server API. */
export const API_PREFIX = '/api/v1';

/** What the router needs from the server. */
export interface ApiRouterOptions {
  hub: Hub;
  config: Readonly<ServerConfig>;
  log: Logger;
  webhookStats: () => WebhookStats;
  /** Whether the server is shutting down (requests then get `503 server-shutdown`). */
  closing: () => boolean;
}

interface Match {
  route: Route;
  params: Record<string, string>;
}

/** Answers every request under {@link API_PREFIX}. */
export class ApiRouter {
  readonly #opts: ApiRouterOptions;
  readonly #ctx: ApiContext;
  readonly #limiter: RateLimiter;
  readonly #routes: { route: Route; segments: string[] }[];
  #openapi: string | undefined;
  #indexBody: string | undefined;
  /** The cluster this node is part of (cluster mode; see {@link joinCluster}). */
  #cluster: ApiClusterPort | undefined;

  constructor(options: ApiRouterOptions) {
    this.#opts = options;
    this.#ctx = { hub: options.hub, webhookStats: options.webhookStats };
    this.#limiter = new RateLimiter(options.config.apiRateLimit, options.config.apiRateBurst);
    this.#routes = ROUTES.map((route) => ({ route, segments: route.path.split('/').slice(1) }));
  }

  /**
   * Cluster mode, once this node joined: from then on every request is answered for the whole
   * cluster, and this node runs the requests other nodes received for what it holds (which is why
   * this is called at once, not on this node's first request).
   */
  joinCluster(cluster: ApiClusterPort): void {
    this.#cluster = cluster;
    serveApi(cluster, ROUTES, this.#ctx, this.#opts.log);
  }

  /** Whether `path` (without query) belongs to the server API. */
  static owns(path: string): boolean {
    return path === API_PREFIX || path.startsWith(`${API_PREFIX}/`);
  }

  /** Answers one request; never throws. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = (q < 0 ? url : url.slice(0, q)).slice(API_PREFIX.length) || '/';
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    void this.#handle(req, res, path, query).catch((error: unknown) => {
      const err = error instanceof BackchannelError ? error : new BackchannelError(ErrorCode.InternalError, 'internal server error', { cause: error });
      if (err.code === ErrorCode.InternalError) this.#opts.log.error({ err: error, method: req.method, path }, 'server API request failed');
      else this.#opts.log.debug({ code: err.code, method: req.method, path }, 'server API request refused');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const headers: Record<string, string> = {};
      if (err.code.startsWith('token-')) headers['www-authenticate'] = 'Bearer';
      if (err.code === ErrorCode.RateLimited) headers['retry-after'] = String(err.details?.retryAfterSec ?? 1);
      if (err.code === ErrorCode.MethodNotAllowed) headers.allow = String(err.details?.allow ?? '');
      // An over-long body is not read to the end: close the connection instead.
      if (err.code === ErrorCode.MessageTooLarge && !req.readableEnded) headers.connection = 'close';
      sendError(res, err, headers);
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> {
    if (path === '/' && (req.method === 'GET' || req.method === 'HEAD')) return this.#index(req, res);
    if (path === OPENAPI_PATH && (req.method === 'GET' || req.method === 'HEAD')) {
      this.#openapi ??= JSON.stringify(buildOpenApi(ROUTES, SERVER_VERSION));
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(this.#openapi) });
      res.end(req.method === 'HEAD' ? undefined : this.#openapi);
      return;
    }
    if (this.#opts.closing()) throw new BackchannelError(ErrorCode.ServerShutdown, 'the server is shutting down');
    const { route, params } = this.#match(req.method ?? 'GET', path);
    const identity = await this.#authenticate(req);
    const decision = this.#limiter.take(identity.apiKey);
    if (!decision.ok) {
      const retryAfterSec = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
      throw new BackchannelError(ErrorCode.RateLimited, `API key "${identity.apiKey}" is over its rate limit of ${this.#opts.config.apiRateLimit} requests per second`, {
        details: { retryAfterSec },
      });
    }
    let body: unknown;
    if (route.body) {
      body = await readJsonBody(req, this.#opts.config.apiMaxBodyBytes);
      if (body === undefined && route.bodyOptional) body = {};
      validate(route.body, body);
    }
    const request = { params, query, body };
    const cluster = this.#cluster;
    const result = await (cluster && route.cluster ? runInCluster(cluster, route, route.cluster, this.#ctx, request) : route.handler(this.#ctx, request));
    // Changes are logged at info (an audit trail of who ended, kicked or updated what); reads at debug.
    const entry = { apiKey: identity.apiKey, op: route.operationId, params, ...route.audit?.({ params, query, body }) };
    if (route.method === 'GET') this.#opts.log.debug(entry, 'server API request');
    else this.#opts.log.info(entry, 'server API request');
    if (route.response) sendJson(res, 200, result);
    else sendJson(res, 204, undefined);
  }

  /** `GET /api/v1/`: what this API is and where its description lives (no token needed). */
  #index(req: IncomingMessage, res: ServerResponse): void {
    this.#indexBody ??= JSON.stringify({
      name: 'Backchannel server API',
      version: SERVER_VERSION,
      openapi: `${API_PREFIX}${OPENAPI_PATH}`,
      authentication: 'Authorization: Bearer <access token with the admin grant, signed with an API secret> (backchannel token create --user app --admin)',
      docs: {
        serverApi: 'docs/server-api.md',
        webhooks: 'docs/webhooks.md',
        configuration: 'docs/configuration.md',
        deployment: 'docs/deployment.md',
        errors: 'docs/errors.md',
        note: 'paths in the Backchannel source repository',
      },
      routes: ROUTES.map((r) => `${r.method} ${API_PREFIX}${r.path}`),
      operations: { health: '/healthz', ready: '/readyz', metrics: '/metrics' },
    });
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(this.#indexBody) });
    res.end(req.method === 'HEAD' ? undefined : this.#indexBody);
  }

  #match(method: string, path: string): Match {
    const segments = path.split('/').slice(1);
    const allowed: string[] = [];
    for (const { route, segments: template } of this.#routes) {
      if (template.length !== segments.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < template.length && ok; i++) {
        const t = template[i]!;
        if (t.startsWith('{')) {
          const value = decodeSegment(segments[i]!);
          if (value) params[t.slice(1, -1)] = value;
          else ok = false;
        } else ok = t === segments[i];
      }
      if (!ok) continue;
      if (route.method === method) return { route, params };
      allowed.push(route.method);
    }
    if (allowed.length > 0) {
      throw new BackchannelError(ErrorCode.MethodNotAllowed, `${method} is not allowed on ${API_PREFIX}${path} (allowed: ${allowed.join(', ')})`, {
        details: { allow: allowed.join(', ') },
      });
    }
    throw new BackchannelError(ErrorCode.NotFound, `no server API route for ${method} ${API_PREFIX}${path}`);
  }

  async #authenticate(req: IncomingMessage): Promise<Identity> {
    const header = req.headers.authorization;
    if (!header) throw new BackchannelError(ErrorCode.TokenMissing, 'the server API needs an "Authorization: Bearer <token>" header');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new BackchannelError(ErrorCode.TokenMalformed, 'the Authorization header must be "Bearer <token>"');
    const identity = await verifyAccessToken(match[1]!, this.#opts.config.apiKeys);
    if (!identity.grants.admin) throw new BackchannelError(ErrorCode.PermissionDenied, 'the server API needs a token with the admin grant');
    return identity;
  }
}

/** Decodes one path segment; undefined if it is empty or not valid percent-encoding. */
function decodeSegment(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw) || undefined;
  } catch {
    return undefined;
  }
}

/** Throws `bad-message` / `invalid-argument` naming the first field that does not fit `schema`. */
function validate(schema: Route['body'] & object, body: unknown): void {
  if (body === undefined) throw new BackchannelError(ErrorCode.BadMessage, 'this request needs a JSON body');
  if (Value.Check(schema, body)) return;
  const first = Value.Errors(schema, body).First();
  const field = first?.path || '/';
  throw new BackchannelError(ErrorCode.InvalidArgument, `invalid request body: ${field} ${first?.message ?? 'is invalid'}`, { details: { field } });
}
