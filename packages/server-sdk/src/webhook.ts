/**
 * Webhook signatures: how the server signs each delivery and how an app server verifies it.
 * HMAC-SHA256 with the API secret over `${timestamp}.${body}`; WebCrypto only, so this runs in
 * Node, browsers and edge runtimes. See docs/webhooks.md.
 */
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import type { WebhookEvent } from './webhook-events.js';

/** Names of the HTTP headers of a webhook delivery (lower case). */
export const WebhookHeader = {
  /** `v1=<hex HMAC-SHA256 of "${timestamp}.${body}">`; several comma-separated entries may appear. */
  Signature: 'backchannel-signature',
  /** Unix time of this delivery attempt, seconds. Part of the signed content. */
  Timestamp: 'backchannel-timestamp',
  /** The event id (also in the body). */
  EventId: 'backchannel-event-id',
  /** The event type (also in the body). */
  EventType: 'backchannel-event-type',
  /** The API key whose secret signed this delivery. */
  KeyId: 'backchannel-key-id',
  /** 1 for the first attempt, 2 for the first retry, … */
  Attempt: 'backchannel-delivery-attempt',
} as const;

/** Default accepted clock difference between the server and the receiver, seconds. */
export const DEFAULT_WEBHOOK_TOLERANCE_SEC = 300;

const encoder = new TextEncoder();
const keyCache = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keyCache.get(secret);
  if (!key) {
    key = crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    // A handful of secrets per process; bound the cache anyway.
    if (keyCache.size >= 16) keyCache.clear();
    keyCache.set(secret, key);
  }
  return key;
}

function signedContent(timestampSec: number, body: string | Uint8Array): Uint8Array<ArrayBuffer> {
  const prefix = encoder.encode(`${timestampSec}.`);
  const bytes = typeof body === 'string' ? encoder.encode(body) : body;
  const out = new Uint8Array(prefix.byteLength + bytes.byteLength);
  out.set(prefix, 0);
  out.set(bytes, prefix.byteLength);
  return out;
}

function toHex(buf: ArrayBuffer): string {
  let out = '';
  for (const b of new Uint8Array(buf)) out += b.toString(16).padStart(2, '0');
  return out;
}

function fromHex(hex: string): Uint8Array<ArrayBuffer> | undefined {
  if (hex.length !== 64 || !/^[0-9a-f]+$/i.test(hex)) return undefined;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/**
 * Computes the `backchannel-signature` header value for `body` sent at `timestampSec` (Unix
 * seconds): `v1=` followed by the hex HMAC-SHA256 of `${timestampSec}.${body}` keyed with the API
 * secret. The server signs every delivery attempt this way; tests and forwarders can use it too.
 * Rejects with `invalid-argument` without a secret.
 */
export async function signWebhook(apiSecret: string, timestampSec: number, body: string | Uint8Array): Promise<string> {
  if (typeof apiSecret !== 'string' || !apiSecret) {
    throw new BackchannelError(ErrorCode.InvalidArgument, 'signWebhook: apiSecret is required', { details: { field: 'apiSecret' } });
  }
  const mac = await crypto.subtle.sign('HMAC', await hmacKey(apiSecret), signedContent(timestampSec, body));
  return `v1=${toHex(mac)}`;
}

/**
 * Remembers accepted event ids so a replayed delivery is refused. Implement it over a shared store
 * (Redis, a database) when several app-server instances receive webhooks.
 */
export interface SeenEventStore {
  /** Whether `id` was accepted before. */
  has(id: string): boolean | Promise<boolean>;
  /** Records `id` as accepted. */
  add(id: string): void | Promise<void>;
}

/**
 * An in-memory {@link SeenEventStore} for one process: ids are kept for `ttlSec` (default one
 * hour, longer than the server's whole retry schedule) and at most `maxEntries` (default 100 000,
 * oldest forgotten first).
 */
export function createMemorySeenStore(options: { ttlSec?: number; maxEntries?: number } = {}): SeenEventStore {
  const ttlMs = (options.ttlSec ?? 3600) * 1000;
  const max = options.maxEntries ?? 100_000;
  const seen = new Map<string, number>();
  const prune = (now: number) => {
    for (const [id, at] of seen) {
      if (at > now - ttlMs && seen.size <= max) break;
      seen.delete(id);
    }
  };
  return {
    has(id) {
      const at = seen.get(id);
      return at !== undefined && at > Date.now() - ttlMs;
    },
    add(id) {
      const now = Date.now();
      seen.delete(id);
      seen.set(id, now);
      prune(now);
    },
  };
}

/** Options of {@link verifyWebhook}. */
export interface VerifyWebhookOptions {
  /** The API secret of the key that signs webhooks (`backchannel-key-id` names the key). */
  apiSecret: string;
  /** Accepted difference between the delivery timestamp and now, seconds. Default 300. */
  toleranceSec?: number;
  /** With a store, an event id that was already accepted is refused with `webhook-replayed`. */
  seen?: SeenEventStore;
  /** Current time, ms since the epoch (for tests). Default `Date.now()`. */
  now?: number;
}

/** Headers as `fetch` (`Headers`) or Node (`IncomingHttpHeaders`) give them. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  let value = record[name];
  if (value === undefined) {
    const key = Object.keys(record).find((k) => k.toLowerCase() === name);
    value = key === undefined ? undefined : record[key];
  }
  return Array.isArray(value) ? value.join(',') : value;
}

/**
 * Verifies a webhook delivery and returns its event. Pass the raw body exactly as received (before
 * any JSON parsing). Rejects with a {@link BackchannelError}:
 * - `webhook-malformed`: a signature header is missing, or the body is not a JSON event;
 * - `webhook-signature-invalid`: no `v1` signature matches the body and `apiSecret`;
 * - `webhook-timestamp-stale`: the timestamp is more than `toleranceSec` from now;
 * - `invalid-argument`: `options.apiSecret` is missing;
 * - `webhook-replayed`: with `seen`, the event id was already accepted. At-least-once delivery
 *   means a legitimate retry can also land here: answer it with a 2xx and skip processing.
 *
 * Event types this SDK version does not know (from a newer server) still verify; switch on `type`
 * and ignore the rest.
 */
export async function verifyWebhook(rawBody: string | Uint8Array, headers: WebhookHeaders, options: VerifyWebhookOptions): Promise<WebhookEvent> {
  if (typeof options?.apiSecret !== 'string' || !options.apiSecret) {
    throw new BackchannelError(ErrorCode.InvalidArgument, 'verifyWebhook: apiSecret is required', { details: { field: 'apiSecret' } });
  }
  const signatureHeader = header(headers, WebhookHeader.Signature);
  const timestampHeader = header(headers, WebhookHeader.Timestamp);
  if (!signatureHeader) throw new BackchannelError(ErrorCode.WebhookMalformed, `the ${WebhookHeader.Signature} header is missing`);
  if (!timestampHeader || !/^\d{1,12}$/.test(timestampHeader.trim())) {
    throw new BackchannelError(ErrorCode.WebhookMalformed, `the ${WebhookHeader.Timestamp} header is missing or not a Unix time in seconds`);
  }
  const timestamp = Number(timestampHeader.trim());
  const content = signedContent(timestamp, rawBody);
  const key = await hmacKey(options.apiSecret);
  let valid = false;
  for (const entry of signatureHeader.split(',')) {
    const [scheme, value] = entry.trim().split('=', 2);
    const mac = scheme === 'v1' && value ? fromHex(value) : undefined;
    if (mac && (await crypto.subtle.verify('HMAC', key, mac, content))) {
      valid = true;
      break;
    }
  }
  if (!valid) throw new BackchannelError(ErrorCode.WebhookSignatureInvalid, 'the webhook signature does not match the body and the API secret');
  const toleranceSec = options.toleranceSec ?? DEFAULT_WEBHOOK_TOLERANCE_SEC;
  const skewSec = Math.abs((options.now ?? Date.now()) / 1000 - timestamp);
  if (skewSec > toleranceSec) {
    throw new BackchannelError(ErrorCode.WebhookTimestampStale, `the webhook timestamp is ${Math.round(skewSec)} s away from now (tolerance ${toleranceSec} s)`, {
      details: { timestamp, toleranceSec },
    });
  }
  let event: unknown;
  try {
    event = JSON.parse(typeof rawBody === 'string' ? rawBody : new TextDecoder().decode(rawBody));
  } catch (cause) {
    throw new BackchannelError(ErrorCode.WebhookMalformed, 'the webhook body is not valid JSON', { cause });
  }
  const e = event as Partial<WebhookEvent> | null;
  if (typeof e !== 'object' || e === null || typeof e.id !== 'string' || typeof e.type !== 'string' || typeof e.sequence !== 'number') {
    throw new BackchannelError(ErrorCode.WebhookMalformed, 'the webhook body is not a Backchannel event (id, type, sequence)');
  }
  if (options.seen) {
    if (await options.seen.has(e.id)) throw new BackchannelError(ErrorCode.WebhookReplayed, `event ${e.id} was already accepted`, { details: { id: e.id } });
    await options.seen.add(e.id);
  }
  return event as WebhookEvent;
}
