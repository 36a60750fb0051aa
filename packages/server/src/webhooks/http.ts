/**
 * One webhook delivery attempt over HTTP(S): a signed POST with a timeout. Redirects are not
 * followed (a 3xx counts as a failed attempt), so deliveries only ever go to the configured URL.
 */
import { WebhookHeader, signWebhook } from '@backchannel/server-sdk';
import { SERVER_VERSION } from '../version.js';
import type { DeliveryOutcome, DeliveryTask } from './queue.js';

/** Who signs: the API key (sent in `backchannel-key-id`) and its secret. */
export interface WebhookSigner {
  apiKey: string;
  apiSecret: string;
}

/** Parses a Retry-After header (seconds or an HTTP date) into ms, if present and sane. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** POSTs `task` to `url`, signed for this attempt's timestamp. Never rejects. */
export async function postWebhook(url: string, task: DeliveryTask, signer: WebhookSigner, timeoutMs: number, signal: AbortSignal): Promise<DeliveryOutcome> {
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    // Each attempt is signed with its own timestamp, so a late retry is not refused as stale.
    const timestamp = Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': `backchannel-webhooks/${SERVER_VERSION}`,
      [WebhookHeader.Signature]: await signWebhook(signer.apiSecret, timestamp, task.body),
      [WebhookHeader.Timestamp]: String(timestamp),
      [WebhookHeader.EventId]: task.id,
      [WebhookHeader.EventType]: task.type,
      [WebhookHeader.KeyId]: signer.apiKey,
      [WebhookHeader.Attempt]: String(task.attempts),
    };
    const res = await fetch(url, { method: 'POST', headers, body: task.body, redirect: 'manual', signal: AbortSignal.any([signal, timeout]) });
    // Read the (small) answer so the connection can be reused; its content is not used.
    await res.arrayBuffer().catch(() => undefined);
    if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status };
    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
    return { ok: false, status: res.status, error: `HTTP ${res.status}`, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
  } catch (error) {
    if (timeout.aborted) return { ok: false, error: `no answer within ${timeoutMs} ms` };
    if (signal.aborted) return { ok: false, error: 'aborted (server stopping)' };
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return { ok: false, error: cause?.code ?? cause?.message ?? (error as Error).message };
  }
}
