/**
 * Typed client of the server API (`/api/v1/`), for app servers. It mints its own short-lived admin
 * token from the API key and secret, and turns every error answer into a {@link BackchannelError}
 * carrying the server's code. Uses `fetch` and WebCrypto only. See docs/server-sdk.md.
 */
import { BackchannelError, ErrorCode, type DataMode, type Priority } from '@backchannel/protocol';
import { API_PAGE_LIMIT_MAX } from './api-schemas.js';
import type {
  ApiCall,
  ApiConference,
  ApiParticipant,
  CallList,
  ConferenceList,
  ParticipantList,
  SendDataRequest,
  SendDataResponse,
  WebhookStats,
} from './api-schemas.js';
import { createAccessToken } from './token.js';

/** Options of {@link ServerApiClient}. */
export interface ServerApiClientOptions {
  apiKey: string;
  apiSecret: string;
  /** Give up on a request after this long, ms. Default 10 000. */
  timeoutMs?: number;
  /** Lifetime of the admin tokens the client mints for itself, seconds. Default 600. */
  tokenTtlSec?: number;
  /** `fetch` implementation. Default: the global one. */
  fetch?: typeof fetch;
}

/** Options of {@link ServerApiClient.sendData}. */
export interface SendDataOptions {
  /** Stream id the clients receive the message on (1–64999). */
  streamId: number;
  /** Default `reliable-message`. */
  mode?: DataMode;
  /** Text (sent as UTF-8) or bytes. */
  data: string | Uint8Array;
  /** Everyone in the room (default), one participant id, or a list of them. */
  destination?: 'broadcast' | string | string[];
  /** Default `normal`. */
  priority?: Priority;
}

/** Which page of a list to fetch. */
export interface PageOptions {
  /** Items per page, 1–1000 (`API_PAGE_LIMIT_MAX`); the server's default is 100. */
  limit?: number;
  /** The `next` cursor of the previous page; omit for the first page. */
  cursor?: string;
}

const DEFAULTS = { timeoutMs: 10_000, tokenTtlSec: 600 } as const;
/** `rate-limited` answers in a row a page walk waits out before it gives up. */
const WALK_RATE_LIMIT_RETRIES = 3;
/** User id (`sub`) of the admin tokens the client mints. */
const API_CLIENT_SUBJECT = 'server-api-client';

function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.byteLength; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/**
 * Client of one server's API. Every method rejects with a {@link BackchannelError}: the server's
 * code (`room-not-found`, `rate-limited`, `permission-denied`, …) with `details.status` (HTTP
 * status) and, for `rate-limited`, `details.retryAfterSec`; `connect-failed` when the server cannot
 * be reached; `request-timeout` after `timeoutMs`.
 */
export class ServerApiClient {
  readonly baseUrl: string;
  readonly #opts: Required<Omit<ServerApiClientOptions, 'fetch'>>;
  readonly #fetch: typeof fetch;
  #token: { jwt: string; renewAt: number } | undefined;

  /**
   * @param url The server's address: `http(s)://host:port` (a `ws(s)://` URL is accepted too).
   */
  constructor(url: string, options: ServerApiClientOptions) {
    if (typeof url !== 'string' || !/^(https?|wss?):\/\//.test(url)) throw invalid('url', 'ServerApiClient: url must be an http(s):// or ws(s):// URL');
    if (!options?.apiKey || !options.apiSecret) throw invalid(options?.apiKey ? 'apiSecret' : 'apiKey', 'ServerApiClient: apiKey and apiSecret are required');
    this.baseUrl = url.replace(/^ws/, 'http').replace(/\/+$/, '');
    this.#opts = { apiKey: options.apiKey, apiSecret: options.apiSecret, timeoutMs: options.timeoutMs ?? DEFAULTS.timeoutMs, tokenTtlSec: options.tokenTtlSec ?? DEFAULTS.tokenTtlSec };
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw invalid('fetch', 'ServerApiClient: no fetch implementation available; pass options.fetch');
    this.#fetch = f.bind(globalThis);
  }

  /**
   * One page of conferences (oldest first), each with its participants: `{ conferences, next }`.
   * Pass `next` back as `cursor` for the following page; it is absent on the last one. To walk
   * them all, use {@link conferences}.
   */
  listConferences(page: PageOptions = {}): Promise<ConferenceList> {
    return this.#request('GET', `/conferences${query(page)}`);
  }

  /**
   * Every conference, oldest first, page after page: `limit` per request (default 1000, the
   * largest page). A `rate-limited` answer is waited out (its `Retry-After`) and retried, up to
   * three times in a row.
   */
  conferences(options: Pick<PageOptions, 'limit'> = {}): AsyncIterableIterator<ApiConference> {
    return this.#walk((page) => this.listConferences({ ...page, limit: options.limit ?? API_PAGE_LIMIT_MAX }), (p) => p.conferences);
  }

  /** One conference by name (`room-not-found` if there is none). */
  getConference(name: string): Promise<ApiConference> {
    return this.#request('GET', `/conferences/${enc(name)}`);
  }

  /** Ends a conference: every participant sees it end with reason `ended-by-server`. */
  async endConference(name: string): Promise<void> {
    await this.#request('DELETE', `/conferences/${enc(name)}`);
  }

  /** One page of ringing and connected 1:1 calls (oldest first): `{ calls, next }`. See {@link listConferences}. */
  listCalls(page: PageOptions = {}): Promise<CallList> {
    return this.#request('GET', `/calls${query(page)}`);
  }

  /** Every ringing or connected call, oldest first, page after page (see {@link conferences}). */
  calls(options: Pick<PageOptions, 'limit'> = {}): AsyncIterableIterator<ApiCall> {
    return this.#walk((page) => this.listCalls({ ...page, limit: options.limit ?? API_PAGE_LIMIT_MAX }), (p) => p.calls);
  }

  /** One call by id (`call-not-found` if there is none). */
  getCall(callId: string): Promise<ApiCall> {
    return this.#request('GET', `/calls/${enc(callId)}`);
  }

  /** Ends a call; both sides and the `call.ended` webhook see reason `ended-by-server`. */
  async endCall(callId: string): Promise<void> {
    await this.#request('DELETE', `/calls/${enc(callId)}`);
  }

  /**
   * One page of a room's participants (in join order): `{ room, participants, next }`. `roomId` is
   * `conference:<name>`, `call:<callId>`, or unqualified: a call id if it starts with `CA_`, else a
   * conference name (see `parseRoomId`).
   */
  listParticipants(roomId: string, page: PageOptions = {}): Promise<ParticipantList> {
    return this.#request('GET', `/rooms/${enc(roomId)}/participants${query(page)}`);
  }

  /** Every participant of a room, in join order, page after page (see {@link conferences}). */
  participants(roomId: string, options: Pick<PageOptions, 'limit'> = {}): AsyncIterableIterator<ApiParticipant> {
    return this.#walk((page) => this.listParticipants(roomId, { ...page, limit: options.limit ?? API_PAGE_LIMIT_MAX }), (p) => p.participants);
  }

  /**
   * Removes a participant from a room. The kicked client's room ends with reason `kicked` (and the
   * message given here); the others see it leave with reason `kicked`. In a 1:1 call, the call ends
   * with reason `ended-by-server`.
   */
  async kickParticipant(roomId: string, participantId: string, options: { reason?: string } = {}): Promise<void> {
    await this.#request('POST', `/rooms/${enc(roomId)}/participants/${enc(participantId)}/kick`, options.reason === undefined ? {} : { reason: options.reason });
  }

  /** Replaces a participant's metadata; everyone in the room is notified. */
  async updateParticipant(roomId: string, participantId: string, update: { metadata: unknown }): Promise<ApiParticipant> {
    const body = { metadata: update.metadata === undefined ? null : update.metadata };
    return (await this.#request<{ participant: ApiParticipant }>('PATCH', `/rooms/${enc(roomId)}/participants/${enc(participantId)}`, body)).participant;
  }

  /**
   * Sends an app control message into a room. Clients receive it like data from a participant,
   * on `streamId`, with `from` = `'server'`.
   */
  sendData(roomId: string, options: SendDataOptions): Promise<SendDataResponse> {
    const body: SendDataRequest =
      typeof options.data === 'string' ? { streamId: options.streamId, data: options.data } : { streamId: options.streamId, data: toBase64(options.data), encoding: 'base64' };
    if (options.mode !== undefined) body.mode = options.mode;
    if (options.destination !== undefined) body.destination = options.destination;
    if (options.priority !== undefined) body.priority = options.priority;
    return this.#request('POST', `/rooms/${enc(roomId)}/data`, body);
  }

  /**
   * Ends a participant's connection for good: its calls end with `ended-by-server`, it leaves its
   * conferences as `kicked`, its client is told goodbye with `connection-revoked` (and `reason`)
   * and cannot resume. A new connection needs a new hello with a valid token.
   */
  async revokeParticipant(participantId: string, options: { reason?: string } = {}): Promise<void> {
    await this.#request('POST', `/participants/${enc(participantId)}/revoke`, options.reason === undefined ? {} : { reason: options.reason });
  }

  /** Delivery counters of each configured webhook URL, with what was dropped by reason and by event type. */
  webhookStats(): Promise<WebhookStats> {
    return this.#request('GET', '/webhooks');
  }

  async *#walk<P extends { next?: string }, T>(fetchPage: (page: { cursor?: string }) => Promise<P>, items: (page: P) => T[]): AsyncIterableIterator<T> {
    let cursor: string | undefined;
    do {
      const request = cursor === undefined ? {} : { cursor };
      let page: P;
      for (let retries = 0; ; retries++) {
        try {
          page = await fetchPage(request);
          break;
        } catch (error) {
          // A long walk may outrun the API key's rate limit: wait as the server says, then go on.
          if (!(error instanceof BackchannelError) || error.code !== ErrorCode.RateLimited || retries >= WALK_RATE_LIMIT_RETRIES) throw error;
          const waitSec = Number(error.details?.retryAfterSec);
          await new Promise((resolve) => setTimeout(resolve, 1000 * (Number.isFinite(waitSec) && waitSec > 0 ? waitSec : 1)));
        }
      }
      yield* items(page);
      cursor = page.next;
    } while (cursor !== undefined);
  }

  async #authorization(): Promise<string> {
    const now = Date.now();
    if (!this.#token || now >= this.#token.renewAt) {
      const ttl = this.#opts.tokenTtlSec;
      const jwt = await createAccessToken({
        apiKey: this.#opts.apiKey,
        apiSecret: this.#opts.apiSecret,
        userId: API_CLIENT_SUBJECT,
        ttl,
        grants: { admin: true, calls: false, publishData: false, subscribeData: false, updateOwnMetadata: false },
      });
      // Renew well before expiry so a token never expires in flight.
      this.#token = { jwt, renewAt: now + ttl * 1000 * 0.8 };
    }
    return `Bearer ${this.#token.jwt}`;
  }

  async #request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: await this.#authorization(), accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const signal = AbortSignal.timeout(this.#opts.timeoutMs);
    let res: Response;
    try {
      res = await this.#fetch(`${this.baseUrl}/api/v1${path}`, { method, headers, body: body === undefined ? null : JSON.stringify(body), signal });
    } catch (cause) {
      if (signal.aborted) throw new BackchannelError(ErrorCode.RequestTimeout, `${method} ${path}: no answer within ${this.#opts.timeoutMs} ms`, { cause });
      throw new BackchannelError(ErrorCode.ConnectFailed, `${method} ${path}: could not reach ${this.baseUrl}: ${(cause as Error).message}`, { cause });
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (res.ok) return json as T;
    const wire = (typeof json === 'object' && json !== null ? json : {}) as { code?: unknown; message?: unknown; details?: unknown };
    const details: Record<string, unknown> = { ...(typeof wire.details === 'object' && wire.details !== null ? wire.details : {}), status: res.status };
    const retryAfter = Number(res.headers.get('retry-after'));
    if (res.status === 429 && Number.isFinite(retryAfter)) details.retryAfterSec = retryAfter;
    return Promise.reject(
      BackchannelError.fromWire({
        code: wire.code,
        message: typeof wire.message === 'string' ? wire.message : `${method} ${path} failed with HTTP ${res.status}`,
        details,
      }),
    );
  }
}

function invalid(field: string, message: string): BackchannelError {
  return new BackchannelError(ErrorCode.InvalidArgument, message, { details: { field } });
}

/** `?limit=…&cursor=…` for the options given ('' for none). */
function query(page: PageOptions): string {
  const params = new URLSearchParams();
  if (page.limit !== undefined) params.set('limit', String(page.limit));
  if (page.cursor !== undefined) params.set('cursor', page.cursor);
  const text = params.toString();
  return text ? `?${text}` : '';
}

function enc(segment: string): string {
  if (typeof segment !== 'string' || !segment) throw new BackchannelError(ErrorCode.InvalidArgument, 'room, call and participant ids must be non-empty strings');
  return encodeURIComponent(segment);
}
