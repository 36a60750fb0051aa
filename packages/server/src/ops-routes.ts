/**
 * The operator's endpoints on the server's port: `GET /readyz` (whether to send new clients here)
 * and `GET /metrics` (Prometheus), optionally behind a bearer token. `/healthz` (whether the
 * process is alive) stays with the server. See docs/deployment.md.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ErrorCode, PROTOCOL_VERSION } from '@backchannel/protocol';
import type { PrometheusMetrics } from './metrics/prometheus.js';
import { SERVER_VERSION } from './version.js';

/** What the endpoints need from the server. */
export interface OpsRoutesOptions {
  /** The exporter, if metrics are enabled. */
  metrics: PrometheusMetrics | undefined;
  /** Bearer token `/metrics` requires; empty for none. */
  metricsToken: string;
  /** `starting`, `ready`, `draining`, `stopping`, or (cluster mode, Redis unreachable) `cluster-unavailable`. */
  state(): 'starting' | 'ready' | 'draining' | 'stopping' | 'cluster-unavailable';
  log: Logger;
}

/** Answers `/readyz` and `/metrics`. */
export class OpsRoutes {
  readonly #opts: OpsRoutesOptions;
  readonly #token: Buffer;

  constructor(options: OpsRoutesOptions) {
    this.#opts = options;
    this.#token = Buffer.from(`Bearer ${options.metricsToken}`);
  }

  /** Whether `path` (without query) is one of these endpoints. */
  static owns(path: string): boolean {
    return path === '/readyz' || path === '/metrics';
  }

  /** Answers one request; never throws. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return send(res, 405, { code: ErrorCode.MethodNotAllowed, message: `${req.method} is not allowed on ${path} (allowed: GET, HEAD)` }, { allow: 'GET, HEAD' });
    }
    if (path === '/readyz') {
      const state = this.#opts.state();
      return send(res, state === 'ready' ? 200 : 503, { status: state, protocol: PROTOCOL_VERSION, version: SERVER_VERSION });
    }
    const metrics = this.#opts.metrics;
    if (!metrics) return send(res, 404, { code: ErrorCode.NotFound, message: 'metrics are disabled on this server (setting "metrics")' });
    if (this.#opts.metricsToken) {
      const header = req.headers.authorization;
      if (!header) return send(res, 401, { code: ErrorCode.TokenMissing, message: '/metrics needs an "Authorization: Bearer <metricsToken>" header' }, { 'www-authenticate': 'Bearer' });
      const given = Buffer.from(header);
      if (given.length !== this.#token.length || !timingSafeEqual(given, this.#token)) {
        return send(res, 403, { code: ErrorCode.PermissionDenied, message: 'the bearer token is not this server’s metricsToken' });
      }
    }
    metrics.scrape().then(
      ({ contentType, body }) => {
        res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (error: unknown) => {
        this.#opts.log.error({ err: error }, 'collecting metrics failed');
        send(res, 500, { code: ErrorCode.InternalError, message: 'collecting metrics failed' });
      },
    );
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
