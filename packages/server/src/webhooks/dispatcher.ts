/**
 * Webhooks of a running server: every {@link HubEvent} becomes a signed POST to each configured
 * URL, delivered at least once, in order per room, without ever blocking the real-time path.
 * Failures are logged and counted; graceful shutdown flushes pending deliveries (bounded).
 */
import type { Logger } from 'pino';
import type { WebhookStats } from '@backchannel/server-sdk';
import type { ServerConfig } from '../config.js';
import type { HubEvent } from '../core/events.js';
import { WebhookSequencer, roomKey } from './events.js';
import { postWebhook, type WebhookSigner } from './http.js';
import { DeliveryQueue, type DeliveryReport } from './queue.js';
import type { WebhookCounters } from '../metrics/prometheus.js';

/** One {@link DeliveryQueue} per configured URL, fed with the sequenced events of the hub. */
export class WebhookDispatcher {
  readonly #sequencer = new WebhookSequencer();
  readonly #endpoints: { url: string; label: string; queue: DeliveryQueue; retries: number }[];
  readonly #log: Logger;

  constructor(config: Readonly<ServerConfig>, log: Logger) {
    this.#log = log.child({ component: 'webhooks' });
    const apiKey = config.webhookApiKey || Object.keys(config.apiKeys)[0]!;
    const signer: WebhookSigner = { apiKey, apiSecret: config.apiKeys[apiKey]! };
    this.#endpoints = config.webhookUrls.map((url) => ({
      url,
      label: metricsLabel(url),
      retries: 0,
      queue: new DeliveryQueue({
        maxAttempts: config.webhookMaxAttempts,
        retryBaseMs: config.webhookRetryBaseMs,
        retryMaxMs: config.webhookRetryMaxMs,
        concurrency: config.webhookConcurrency,
        maxEvents: config.webhookQueueMaxEvents,
        deliver: (task, signal) => postWebhook(url, task, signer, config.webhookTimeoutMs, signal),
        report: (r) => this.#report(url, r),
      }),
    }));
  }

  /** Whether any webhook URL is configured. */
  get enabled(): boolean {
    return this.#endpoints.length > 0;
  }

  /** Queues `event` for every URL. Synchronous and cheap; never throws. */
  handle(event: HubEvent): void {
    if (this.#endpoints.length === 0) return;
    try {
      const webhook = this.#sequencer.next(event);
      const body = JSON.stringify(webhook);
      const key = roomKey(webhook.room);
      for (const { queue } of this.#endpoints) queue.push({ key, id: webhook.id, type: webhook.type, body, attempts: 0 });
    } catch (error) {
      this.#log.error({ err: error, type: event.type }, 'could not queue webhook event');
    }
  }

  /** Delivery counters per URL. */
  stats(): WebhookStats {
    return { endpoints: this.#endpoints.map(({ url, queue }) => ({ url, pending: queue.pending, ...queue.stats })) };
  }

  /** Delivery counters per URL for metrics (the URL without credentials, query or fragment). */
  counters(): WebhookCounters[] {
    return this.#endpoints.map(({ label, queue, retries }) => ({ url: label, pending: queue.pending, retries, ...queue.stats }));
  }

  /**
   * Waits (at most `timeoutMs`) for pending deliveries, then stops every queue. Events still
   * undelivered are logged and counted as dropped.
   */
  async flush(timeoutMs: number): Promise<void> {
    if (this.#endpoints.length === 0) return;
    const pending = this.#endpoints.reduce((n, e) => n + e.queue.pending, 0);
    if (pending > 0) this.#log.info({ pending, timeoutMs }, 'flushing webhooks');
    const left = await Promise.all(this.#endpoints.map((e) => e.queue.flush(timeoutMs)));
    const undelivered = left.reduce((a, b) => a + b, 0);
    if (undelivered > 0) this.#log.error({ undelivered }, 'webhooks left undelivered at shutdown');
    else if (pending > 0) this.#log.info('webhooks flushed');
  }

  #report(url: string, r: DeliveryReport): void {
    const base = { url, eventId: r.task.id, type: r.task.type, attempt: r.task.attempts };
    switch (r.result) {
      case 'delivered':
        this.#log.debug({ ...base, status: r.outcome.status }, 'webhook delivered');
        return;
      case 'retry':
        for (const e of this.#endpoints) if (e.url === url) e.retries++;
        this.#log.warn({ ...base, status: r.outcome.status, error: r.outcome.error, retryInMs: r.delayMs }, 'webhook attempt failed; will retry');
        return;
      case 'dropped':
        this.#log.error({ ...base, status: r.outcome?.status, error: r.outcome?.error, why: r.why }, 'webhook dropped');
        return;
    }
  }
}

/** `url` as a metrics label: no user info, query or fragment (they may hold secrets). */
function metricsLabel(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}
