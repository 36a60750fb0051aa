/**
 * Webhooks of a running server: every {@link HubEvent} becomes a signed POST to each configured
 * URL, delivered at least once, in order per room, fairly between the users who cause them, and
 * without ever blocking the real-time path. Failures and drops are logged and counted; graceful
 * shutdown flushes pending deliveries (bounded).
 */
import type { Logger } from 'pino';
import type { WebhookStats } from '@backchannel/server-sdk';
import type { ServerConfig } from '../config.js';
import type { HubEvent, RoomRef } from '../core/events.js';
import type { WebhookCounters } from '../metrics/prometheus.js';
import { WebhookSequencer, roomKey } from './events.js';
import { postWebhook, type WebhookSigner } from './http.js';
import { DeliveryQueue, type DeliveryReport, type DeliveryTask } from './queue.js';

/** Events shed from a full queue are logged as one summary per URL at most this often, ms. */
const SHED_LOG_INTERVAL_MS = 1_000;

/** The user whose action caused `e` (for fair delivery and shedding), if the event names one. */
function causeOf(e: HubEvent): string | undefined {
  switch (e.type) {
    case 'call.incoming':
    case 'call.started':
    case 'call.ended':
      // Every event of a call follows from the caller's `call.make`.
      return `user:${e.caller.userId}`;
    case 'participant.joined':
    case 'participant.left':
    case 'participant.kicked':
      return `user:${e.participant.userId}`;
    default:
      return undefined;
  }
}

interface Endpoint {
  url: string;
  /** The URL as a metrics label: without user info, query or fragment (they may hold secrets). */
  label: string;
  queue: DeliveryQueue;
  /** Events shed from the full queue since the last summary was logged. */
  shed: { count: number; byType: Record<string, number>; bySource: Map<string, number>; timer: ReturnType<typeof setTimeout> | undefined };
}

/** One {@link DeliveryQueue} per configured URL, fed with the sequenced events of the hub. */
export class WebhookDispatcher {
  readonly #sequencer = new WebhookSequencer();
  readonly #endpoints: Endpoint[];
  readonly #log: Logger;
  /** A conference's `conference.started`, held until the join that created it says whose it is. */
  readonly #starting = new Map<string, Omit<DeliveryTask, 'source'>>();
  /** Who each live conference's own events (`conference.started` / `.ended`) are charged to: its creator. */
  readonly #owners = new Map<string, string>();

  constructor(config: Readonly<ServerConfig>, log: Logger) {
    this.#log = log.child({ component: 'webhooks' });
    const apiKey = config.webhookApiKey || Object.keys(config.apiKeys)[0]!;
    const signer: WebhookSigner = { apiKey, apiSecret: config.apiKeys[apiKey]! };
    this.#endpoints = config.webhookUrls.map((url) => {
      const endpoint: Endpoint = {
        url,
        label: metricsLabel(url),
        shed: { count: 0, byType: {}, bySource: new Map(), timer: undefined },
        queue: new DeliveryQueue({
          maxAttempts: config.webhookMaxAttempts,
          retryBaseMs: config.webhookRetryBaseMs,
          retryMaxMs: config.webhookRetryMaxMs,
          concurrency: config.webhookConcurrency,
          maxEvents: config.webhookQueueMaxEvents,
          deliver: (task, signal) => postWebhook(url, task, signer, config.webhookTimeoutMs, signal),
          report: (r) => this.#report(endpoint, r),
        }),
      };
      return endpoint;
    });
  }

  /** Whether any webhook URL is configured. */
  get enabled(): boolean {
    return this.#endpoints.length > 0;
  }

  /** Continues the sequence of `room` after `last` (see WebhookSequencer.continueFrom). */
  continueFrom(room: RoomRef, last: number): void {
    this.#sequencer.continueFrom(room, last);
  }

  /** Queues `event` for every URL. Synchronous and cheap; never throws. */
  handle(event: HubEvent): void {
    if (this.#endpoints.length === 0) return;
    try {
      const webhook = this.#sequencer.next(event);
      const key = roomKey(webhook.room);
      const task = { key, id: webhook.id, type: webhook.type, body: JSON.stringify(webhook), attempts: 0 };
      if (event.type === 'conference.started') {
        // The core emits the creator's `participant.joined` right after, in the same turn: charge
        // the conference to that user. Released at the end of the turn in any case.
        this.#starting.set(key, task);
        queueMicrotask(() => this.#releaseStart(key, `room:${key}`));
        return;
      }
      let source = causeOf(event);
      this.#releaseStart(key, source ?? `room:${key}`);
      if (event.type === 'conference.ended') {
        source = this.#owners.get(key);
        this.#owners.delete(key);
      }
      this.#push({ ...task, source: source ?? `room:${key}` });
    } catch (error) {
      this.#log.error({ err: error, type: event.type }, 'could not queue webhook event');
    }
  }

  /** Delivery counters per URL (`GET /api/v1/webhooks`). */
  stats(): WebhookStats {
    return {
      endpoints: this.#endpoints.map(({ url, queue }) => {
        const s = queue.stats;
        return { url, pending: queue.pending, delivered: s.delivered, failedAttempts: s.failedAttempts, dropped: s.dropped, droppedByReason: { ...s.droppedByReason }, droppedByType: { ...s.droppedByType } };
      }),
    };
  }

  /** Delivery counters per URL for metrics (the URL without credentials, query or fragment). */
  counters(): WebhookCounters[] {
    return this.#endpoints.map(({ label, queue }) => {
      const s = queue.stats;
      return { url: label, pending: queue.pending, delivered: s.delivered, failedAttempts: s.failedAttempts, retries: s.retries, dropped: s.dropped };
    });
  }

  /**
   * Waits (at most `timeoutMs`) for pending deliveries, then stops every queue. Events still
   * undelivered are logged and counted as dropped.
   */
  async flush(timeoutMs: number): Promise<void> {
    if (this.#endpoints.length === 0) return;
    for (const key of [...this.#starting.keys()]) this.#releaseStart(key, `room:${key}`);
    const pending = this.#endpoints.reduce((n, e) => n + e.queue.pending, 0);
    if (pending > 0) this.#log.info({ pending, timeoutMs }, 'flushing webhooks');
    const left = await Promise.all(this.#endpoints.map((e) => e.queue.flush(timeoutMs)));
    for (const e of this.#endpoints) this.#logShed(e);
    const undelivered = left.reduce((a, b) => a + b, 0);
    if (undelivered > 0) this.#log.error({ undelivered }, 'webhooks left undelivered at shutdown');
    else if (pending > 0) this.#log.info('webhooks flushed');
  }

  /** Queues a held `conference.started` of `key`, charged to `source` (its creator, if known). */
  #releaseStart(key: string, source: string): void {
    const task = this.#starting.get(key);
    if (!task) return;
    this.#starting.delete(key);
    this.#owners.set(key, source);
    this.#push({ ...task, source });
  }

  #push(task: DeliveryTask): void {
    for (const { queue } of this.#endpoints) queue.push({ ...task });
  }

  #report(e: Endpoint, r: DeliveryReport): void {
    const base = { url: e.url, eventId: r.task.id, type: r.task.type, attempt: r.task.attempts };
    switch (r.result) {
      case 'delivered':
        this.#log.debug({ ...base, status: r.outcome.status }, 'webhook delivered');
        return;
      case 'retry':
        this.#log.warn({ ...base, status: r.outcome.status, error: r.outcome.error, retryInMs: r.delayMs }, 'webhook attempt failed; will retry');
        return;
      case 'dropped':
        if (r.reason === 'queueFull') return this.#countShed(e, r.task);
        this.#log.error({ ...base, status: r.outcome?.status, error: r.outcome?.error, reason: r.reason, why: r.why }, 'webhook dropped');
        return;
    }
  }

  /** A flood sheds events by the thousand: they are logged as one summary per interval. */
  #countShed(e: Endpoint, task: DeliveryTask): void {
    const shed = e.shed;
    shed.count++;
    shed.byType[task.type] = (shed.byType[task.type] ?? 0) + 1;
    shed.bySource.set(task.source, (shed.bySource.get(task.source) ?? 0) + 1);
    if (!shed.timer) {
      shed.timer = setTimeout(() => this.#logShed(e), SHED_LOG_INTERVAL_MS);
      shed.timer.unref?.();
    }
  }

  #logShed(e: Endpoint): void {
    const shed = e.shed;
    clearTimeout(shed.timer);
    shed.timer = undefined;
    if (shed.count === 0) return;
    const sources = Object.fromEntries([...shed.bySource].sort((a, b) => b[1] - a[1]).slice(0, 5));
    this.#log.error(
      { url: e.url, dropped: shed.count, byType: shed.byType, sources, reason: 'queueFull' },
      'webhook events dropped: the queue was full (shed from the users holding the most)',
    );
    e.shed = { count: 0, byType: {}, bySource: new Map(), timer: undefined };
  }
}

/** `url` as a metrics label: no user info, query or fragment (they may hold secrets). */
function metricsLabel(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}
