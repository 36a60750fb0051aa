import { describe, expect, it } from 'vitest';
import { ErrorCode } from '@backchannel/protocol';
import { createMemorySeenStore, signWebhook, verifyWebhook, WebhookHeader } from '@backchannel/server-sdk';

const SECRET = 'webhook-secret-123';
const now = 1_700_000_000_000;
const ts = Math.floor(now / 1000);
const body = JSON.stringify({ id: 'EV_1', type: 'conference.started', createdAt: now, room: { kind: 'conference', name: 'r' }, sequence: 1 });

async function headers(over: Record<string, string> = {}, b = body, t = ts) {
  return { [WebhookHeader.Signature]: await signWebhook(SECRET, t, b), [WebhookHeader.Timestamp]: String(t), [WebhookHeader.EventId]: 'EV_1', ...over };
}

describe('signWebhook / verifyWebhook', () => {
  it('signs v1=hex(HMAC-SHA256(secret, `${timestamp}.${body}`))', async () => {
    const { createHmac } = await import('node:crypto');
    expect(await signWebhook(SECRET, ts, body)).toBe(`v1=${createHmac('sha256', SECRET).update(`${ts}.${body}`).digest('hex')}`);
  });

  it('accepts a good delivery from a string or bytes, with plain or Headers headers', async () => {
    const h = await headers();
    expect(await verifyWebhook(body, h, { apiSecret: SECRET, now })).toMatchObject({ id: 'EV_1', type: 'conference.started' });
    expect((await verifyWebhook(new TextEncoder().encode(body), new Headers(h), { apiSecret: SECRET, now })).sequence).toBe(1);
    const upper = Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toUpperCase(), v]));
    expect((await verifyWebhook(body, upper, { apiSecret: SECRET, now })).id).toBe('EV_1');
  });

  it('accepts any matching entry of a multi-signature header (secret rotation)', async () => {
    const h = await headers();
    const other = await signWebhook('another-secret', ts, body);
    await expect(verifyWebhook(body, { ...h, [WebhookHeader.Signature]: `${other}, ${h[WebhookHeader.Signature]}` }, { apiSecret: SECRET, now })).resolves.toBeDefined();
  });

  it('rejects a bad signature, a changed body or timestamp, and a wrong secret', async () => {
    const h = await headers();
    const bad = { code: ErrorCode.WebhookSignatureInvalid };
    await expect(verifyWebhook(body.replace('"r"', '"s"'), h, { apiSecret: SECRET, now })).rejects.toMatchObject(bad);
    await expect(verifyWebhook(body, { ...h, [WebhookHeader.Timestamp]: String(ts + 1) }, { apiSecret: SECRET, now })).rejects.toMatchObject(bad);
    await expect(verifyWebhook(body, h, { apiSecret: 'wrong-secret', now })).rejects.toMatchObject(bad);
    await expect(verifyWebhook(body, { ...h, [WebhookHeader.Signature]: 'v1=zz' }, { apiSecret: SECRET, now })).rejects.toMatchObject(bad);
    await expect(verifyWebhook(body, { ...h, [WebhookHeader.Signature]: 'v0=' + 'a'.repeat(64) }, { apiSecret: SECRET, now })).rejects.toMatchObject(bad);
  });

  it('rejects a stale or future timestamp beyond the tolerance', async () => {
    const h = await headers();
    await expect(verifyWebhook(body, h, { apiSecret: SECRET, now: now + 301_000 })).rejects.toMatchObject({ code: ErrorCode.WebhookTimestampStale });
    await expect(verifyWebhook(body, h, { apiSecret: SECRET, now: now - 301_000 })).rejects.toMatchObject({ code: ErrorCode.WebhookTimestampStale });
    await expect(verifyWebhook(body, h, { apiSecret: SECRET, now: now + 299_000 })).resolves.toBeDefined();
    await expect(verifyWebhook(body, h, { apiSecret: SECRET, now: now + 20_000, toleranceSec: 10 })).rejects.toMatchObject({ code: ErrorCode.WebhookTimestampStale });
  });

  it('rejects a replayed event id when given a seen-id store', async () => {
    const seen = createMemorySeenStore();
    const h = await headers();
    await verifyWebhook(body, h, { apiSecret: SECRET, now, seen });
    // Even re-signed with a fresh timestamp (a retry), the same id is a replay.
    const again = await headers({}, body, ts + 5);
    await expect(verifyWebhook(body, again, { apiSecret: SECRET, now, seen })).rejects.toMatchObject({ code: ErrorCode.WebhookReplayed, details: { id: 'EV_1' } });
  });

  it('rejects missing headers and bodies that are not events as malformed', async () => {
    const h = await headers();
    const malformed = { code: ErrorCode.WebhookMalformed };
    await expect(verifyWebhook(body, { [WebhookHeader.Timestamp]: String(ts) }, { apiSecret: SECRET, now })).rejects.toMatchObject(malformed);
    await expect(verifyWebhook(body, { [WebhookHeader.Signature]: h[WebhookHeader.Signature] }, { apiSecret: SECRET, now })).rejects.toMatchObject(malformed);
    await expect(verifyWebhook(body, { ...h, [WebhookHeader.Timestamp]: 'yesterday' }, { apiSecret: SECRET, now })).rejects.toMatchObject(malformed);
    const notJson = 'not json';
    await expect(verifyWebhook(notJson, await headers({}, notJson), { apiSecret: SECRET, now })).rejects.toMatchObject(malformed);
    const notEvent = '{"hello":1}';
    await expect(verifyWebhook(notEvent, await headers({}, notEvent), { apiSecret: SECRET, now })).rejects.toMatchObject(malformed);
  });
});
