/**
 * The demo web app's edge: the built page (packages/demo, written into `dist/demo` by the build)
 * at `GET /` and `/demo/…`, and short-lived demo access tokens at `POST /demo/token`.
 *
 * A request with a still-valid demo token renews it for the same user (the client SDK's
 * `tokenRefresh`), so a page keeps its user id across long sessions and restarts.
 *
 * Both exist only while the server runs on the development key or with `demo: true`; otherwise
 * every demo route answers `404 not-found`, so a production server never mints tokens for
 * strangers unless its operator asked for it. See docs/demo.md.
 */
import { randomBytes, createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { Logger } from 'pino';
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import { createAccessToken, type Grants } from '@backchannel/server-sdk';
import { readJsonBody, sendError, sendJson } from './api/http.js';
import { RateLimiter } from './api/rate-limit.js';
import { verifyAccessToken } from './auth.js';
import type { ServerConfig } from './config.js';

/** URL prefix of the demo's assets and token endpoint (the page itself is at `/`). */
export const DEMO_PREFIX = '/demo';
/** The token endpoint. */
export const DEMO_TOKEN_PATH = `${DEMO_PREFIX}/token`;
/** Conferences a demo token may join when the demo runs on a production key. */
export const DEMO_CONFERENCE_PREFIX = 'demo-';
/** Lifetime of a demo token, seconds (the page fetches a new one when it reconnects as a new participant). */
export const DEMO_TOKEN_TTL_SEC = 4 * 3600;
/** Token requests per second per client address, and the burst above it. */
const TOKEN_RATE = { perSec: 1, burst: 20 };
/** Longest display name the endpoint accepts, characters. */
const MAX_NAME = 64;
/** Where the build puts the page: `dist/demo` beside this module's compiled file. */
const DEFAULT_ROOT = fileURLToPath(new URL('./demo/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
};

/**
 * The page loads only its own scripts and styles, talks only to this server (its WebSocket is
 * same-origin), and may not be framed. Received files are offered as `blob:` downloads.
 */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/** One file of the built page, held in memory (the page is small). */
interface Asset {
  body: Buffer;
  gzip: Buffer | undefined;
  type: string;
  etag: string;
}

/** What a successful `POST /demo/token` answers. */
export interface DemoTokenResponse {
  /** Access token for this server (HS256, signed with its first API key). */
  token: string;
  /** The user id in the token: `demo-` and random characters, new for every request. */
  userId: string;
  displayName: string;
  /** Conference names the token may join (`*` = any, `demo-*` = names starting with `demo-`). */
  conferences: string[];
  /** Expiry, ms since the epoch. */
  expiresAt: number;
}

/** Options of {@link DemoRoutes}. */
export interface DemoRoutesOptions {
  config: Readonly<ServerConfig>;
  log: Logger;
  /** Directory of the built page (default: `dist/demo` of this package). */
  root?: string;
}

/** Whether a server with `config` serves the demo and its token endpoint. */
export function demoEnabled(config: Readonly<ServerConfig>): boolean {
  return config.devKeys || config.demo;
}

/** Answers `GET /`, `/demo/…` and `POST /demo/token`. */
export class DemoRoutes {
  readonly #config: Readonly<ServerConfig>;
  readonly #log: Logger;
  readonly #root: string;
  readonly #enabled: boolean;
  readonly #limiter = new RateLimiter(TOKEN_RATE.perSec, TOKEN_RATE.burst);
  #assets: Map<string, Asset> | undefined;
  /** Modification time of the index.html the assets were read with. */
  #builtAt = 0;

  constructor(options: DemoRoutesOptions) {
    this.#config = options.config;
    this.#log = options.log;
    this.#root = options.root ?? DEFAULT_ROOT;
    this.#enabled = demoEnabled(options.config);
    if (options.config.demo && !options.config.devKeys) {
      this.#log.warn(
        { endpoint: DEMO_TOKEN_PATH, conferences: `${DEMO_CONFERENCE_PREFIX}*` },
        'the demo is on: anyone who can reach this server can get a demo token (for demo-* conferences and 1:1 calls)',
      );
    }
  }

  /** Whether `path` (without query) is a demo route. */
  static owns(path: string): boolean {
    return path === '/' || path === '/index.html' || path === DEMO_PREFIX || path.startsWith(`${DEMO_PREFIX}/`);
  }

  /** Answers one request; never throws. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    void this.#handle(req, res, path).catch((error: unknown) => {
      const err = error instanceof BackchannelError ? error : new BackchannelError(ErrorCode.InternalError, 'internal server error', { cause: error });
      if (err.code === ErrorCode.InternalError) this.#log.error({ err: error, method: req.method, path }, 'demo request failed');
      if (res.headersSent) return void res.destroy();
      const headers: Record<string, string> = {};
      if (err.code === ErrorCode.RateLimited) headers['retry-after'] = String(err.details?.retryAfterSec ?? 1);
      if (err.code === ErrorCode.MethodNotAllowed) headers.allow = String(err.details?.allow ?? '');
      if (err.code === ErrorCode.MessageTooLarge && !req.readableEnded) headers.connection = 'close';
      sendError(res, err, headers);
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (!this.#enabled) {
      throw new BackchannelError(
        ErrorCode.NotFound,
        `no route for ${req.method} ${path}: the demo runs only on the development key or with the "demo" setting (backchannel serve --demo)`,
      );
    }
    if (path === DEMO_TOKEN_PATH) {
      if (req.method !== 'POST') throw notAllowed(req.method, path, 'POST');
      return this.#token(req, res);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') throw notAllowed(req.method, path, 'GET, HEAD');
    const key = path === '/' || path === '/index.html' ? 'index.html' : path.slice(DEMO_PREFIX.length + 1);
    const asset = this.#load().get(key);
    if (!asset) {
      if (key === 'index.html') throw new BackchannelError(ErrorCode.NotFound, `the demo page is not built (no ${join(this.#root, 'index.html')}): run npm run build`);
      throw new BackchannelError(ErrorCode.NotFound, `no demo file ${path}`);
    }
    serveAsset(req, res, asset, key === 'index.html');
  }

  /** Mints a token for a new demo user (`{ displayName }`), or renews one (`{ token }`). */
  async #token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const decision = this.#limiter.take(req.socket.remoteAddress ?? '');
    if (!decision.ok) {
      const retryAfterSec = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
      throw new BackchannelError(ErrorCode.RateLimited, `too many demo token requests from this address; try again in ${retryAfterSec} s`, { details: { retryAfterSec } });
    }
    // A JSON content type cannot be sent cross-site without a CORS preflight, which this server never allows.
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      throw new BackchannelError(ErrorCode.BadMessage, 'send the token request as JSON (content-type: application/json)');
    }
    const body = ((await readJsonBody(req, 8192)) ?? {}) as { displayName?: unknown; token?: unknown };
    // On the development key everything is open anyway; with the demo flag on a real key, demo
    // users are kept to their own conferences.
    const conferences = this.#config.devKeys ? ['*'] : [`${DEMO_CONFERENCE_PREFIX}*`];
    let userId: string;
    let displayName: string;
    if (body.token !== undefined) {
      if (typeof body.token !== 'string') throw new BackchannelError(ErrorCode.InvalidArgument, 'token must be a string');
      const identity = await verifyAccessToken(body.token, this.#config.apiKeys);
      // Only what this endpoint handed out is renewed here: never a real user's token.
      const demo = identity.userId.startsWith('demo-') && !identity.grants.admin && !identity.grants.hidden && identity.grants.conferences.join() === conferences.join();
      if (!demo) throw new BackchannelError(ErrorCode.PermissionDenied, 'only demo tokens from this endpoint can be renewed here');
      ({ userId, displayName } = identity);
    } else {
      displayName = checkName(body.displayName);
      userId = `demo-${randomBytes(6).toString('base64url')}`;
    }
    const [apiKey, apiSecret] = Object.entries(this.#config.apiKeys)[0]!;
    const grants: Grants = { calls: true, conferences, publishData: true, subscribeData: true, updateOwnMetadata: true };
    const token = await createAccessToken({ apiKey, apiSecret, userId, name: displayName, ttl: DEMO_TOKEN_TTL_SEC, grants });
    this.#log.debug({ userId }, 'demo token issued');
    const answer: DemoTokenResponse = { token, userId, displayName, conferences, expiresAt: Date.now() + DEMO_TOKEN_TTL_SEC * 1000 };
    sendJson(res, 200, answer);
  }

  /** Reads the built page (a handful of small files) once per build: a rebuild is picked up by the next request. */
  #load(): Map<string, Asset> {
    const builtAt = mtimeOf(join(this.#root, 'index.html'));
    if (this.#assets && builtAt === this.#builtAt) return this.#assets;
    const assets = new Map<string, Asset>();
    for (const file of listFiles(this.#root)) {
      const body = readFileSync(file);
      const type = CONTENT_TYPES[extname(file)] ?? 'application/octet-stream';
      const compressible = /^(text\/|application\/json|image\/svg)/.test(type) && body.byteLength > 512;
      assets.set(relative(this.#root, file).split(sep).join('/'), {
        body,
        gzip: compressible ? gzipSync(body, { level: 9 }) : undefined,
        type,
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
      });
    }
    this.#assets = assets;
    this.#builtAt = builtAt;
    return assets;
  }
}

function serveAsset(req: IncomingMessage, res: ServerResponse, asset: Asset, page: boolean): void {
  const headers: Record<string, string | number> = {
    'content-type': asset.type,
    etag: asset.etag,
    // Files keep their names from build to build: revalidate every time (a 304 is cheap).
    'cache-control': 'no-cache',
    vary: 'accept-encoding',
    ...(page ? PAGE_HEADERS : { 'x-content-type-options': 'nosniff' }),
  };
  if (req.headers['if-none-match'] === asset.etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const gzip = asset.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const body = gzip ? asset.gzip! : asset.body;
  if (gzip) headers['content-encoding'] = 'gzip';
  headers['content-length'] = body.byteLength;
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

function mtimeOf(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** Every file under `dir` (none if it does not exist). */
function listFiles(dir: string): string[] {
  let entries;
  try {
    if (!statSync(dir).isDirectory()) return [];
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name)) : e.isFile() ? [join(dir, e.name)] : []));
}

function checkName(value: unknown): string {
  if (value === undefined) return 'Guest';
  if (typeof value !== 'string') throw new BackchannelError(ErrorCode.InvalidArgument, 'displayName must be a string');
  const name = value.trim();
  if (!name || name.length > MAX_NAME || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new BackchannelError(ErrorCode.InvalidArgument, `displayName must be 1–${MAX_NAME} characters without control characters`);
  }
  return name;
}

function notAllowed(method: string | undefined, path: string, allow: string): BackchannelError {
  return new BackchannelError(ErrorCode.MethodNotAllowed, `${method} is not allowed on ${path} (allowed: ${allow})`, { details: { allow } });
}
