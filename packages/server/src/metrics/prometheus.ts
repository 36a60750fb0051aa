/**
 * Prometheus metrics of a running server (`GET /metrics`, text format 0.0.4, via prom-client).
 *
 * Nothing here runs per frame. The data path counts into the plain integer fields of the core's
 * {@link MetricsSink}; rooms, participants, connections, sessions and queues are read from the
 * server's state; both happen in `collect()` callbacks, only when Prometheus scrapes. The few
 * things observed as they happen (a join's latency, a refused handshake, a resume) happen at most
 * once per request. docs/deployment.md lists every metric.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { DataModes } from '@backchannel/protocol';
import type { Hub } from '../core/hub.js';
import type { DataCounters, MetricsSink } from '../core/metrics.js';

/** One webhook URL's delivery counters, as the dispatcher keeps them. */
export interface WebhookCounters {
  url: string;
  pending: number;
  delivered: number;
  failedAttempts: number;
  retries: number;
  dropped: number;
}

/** What the exporter reads from the server at scrape time. */
export interface MetricsSource {
  hub: Hub;
  sink: MetricsSink;
  /** Open WebSocket connections (in their handshake or carrying a session). */
  connections(): number;
  /** Calls `visit` with the bytes waiting in each client's outbound queue. */
  eachQueue(visit: (bytes: number) => void): void;
  webhooks(): WebhookCounters[];
  /** 1 when the server takes new participants (see `/readyz`), else 0. */
  ready(): boolean;
}

/** Buckets of a connection's queued bytes: 0, then 1 KiB to 64 MiB by powers of 4. */
const QUEUE_BUCKETS = [0, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864];
/** Buckets of a join's latency, s: 50 µs to 1 s. */
const JOIN_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

type CounterField = Exclude<keyof DataCounters, 'sessionsOpened' | 'sessionsClosed' | 'receiversTooSlow' | 'receiversOverflowed'>;

/** The server's Prometheus registry, with process and event-loop metrics of Node. */
export class PrometheusMetrics {
  readonly registry = new Registry();
  readonly #joins: Histogram<'kind'>;
  readonly #handshakeFailures: Counter<'code'>;
  readonly #resumes: Counter;

  constructor(source: MetricsSource) {
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    const { hub, sink } = source;

    new Gauge({
      name: 'backchannel_rooms',
      help: 'Rooms open, by kind (conference, or call for a 1:1 call)',
      labelNames: ['kind'],
      registers: [r],
      collect() {
        let conference = 0;
        let call = 0;
        for (const room of hub.rooms.values()) room.kind === 'call' ? call++ : conference++;
        this.set({ kind: 'conference' }, conference);
        this.set({ kind: 'call' }, call);
      },
    });
    new Gauge({
      name: 'backchannel_participants',
      help: 'Participants in rooms, by room kind (a participant in two rooms counts twice)',
      labelNames: ['kind'],
      registers: [r],
      collect() {
        let conference = 0;
        let call = 0;
        for (const room of hub.rooms.values()) room.kind === 'call' ? (call += room.size) : (conference += room.size);
        this.set({ kind: 'conference' }, conference);
        this.set({ kind: 'call' }, call);
      },
    });
    new Gauge({
      name: 'backchannel_clients',
      help: 'Authenticated clients, by connection state (reconnecting: lost its connection, may still resume)',
      labelNames: ['state'],
      registers: [r],
      collect() {
        let reconnecting = 0;
        for (const peer of hub.peers.values()) if (peer.connection === 'reconnecting') reconnecting++;
        this.set({ state: 'connected' }, hub.peers.size - reconnecting);
        this.set({ state: 'reconnecting' }, reconnecting);
      },
    });
    new Gauge({
      name: 'backchannel_connections',
      help: 'Open WebSocket connections (in their handshake or carrying a client)',
      registers: [r],
      collect() {
        this.set(source.connections());
      },
    });
    new Gauge({
      name: 'backchannel_ready',
      help: '1 while the server takes new participants (GET /readyz answers 200), 0 while starting or draining',
      registers: [r],
      collect() {
        this.set(source.ready() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'backchannel_data_sessions',
      help: 'Open data send sessions, by mode',
      labelNames: ['mode'],
      registers: [r],
      collect() {
        for (const mode of DataModes) this.set({ mode }, sink.data[mode].sessionsOpened - sink.data[mode].sessionsClosed);
      },
    });
    dataCounter(r, sink, 'backchannel_data_sessions_opened_total', 'Data send sessions opened, by mode', (c) => c.sessionsOpened);
    const fields: [CounterField, string, string][] = [
      ['messagesIn', 'backchannel_data_messages_in_total', 'Data messages received from senders, by mode (a fragmented message counts once)'],
      ['messagesOut', 'backchannel_data_messages_out_total', 'Data messages forwarded to receivers, by mode (once per receiver)'],
      ['framesIn', 'backchannel_data_frames_in_total', 'Data frames (message fragments and chunks) received from senders, by mode'],
      ['framesOut', 'backchannel_data_frames_out_total', 'Data frames forwarded to receivers, by mode (once per receiver)'],
      ['bytesIn', 'backchannel_data_bytes_in_total', 'Data payload bytes received from senders, by mode'],
      ['bytesOut', 'backchannel_data_bytes_out_total', 'Data payload bytes forwarded to receivers, by mode (once per receiver)'],
      ['dropped', 'backchannel_data_dropped_total', 'Unreliable data frames dropped under congestion or for a receiver whose connection was lost, by mode'],
    ];
    for (const [field, name, help] of fields) dataCounter(r, sink, name, help, (c) => c[field]);
    new Counter({
      name: 'backchannel_receivers_detached_total',
      help: 'Receivers detached from a reliable data session: receiver-too-slow (fell too far behind) or resume-buffer-overflow (too much held while its connection was lost)',
      labelNames: ['reason'],
      registers: [r],
      collect() {
        let slow = 0;
        let overflow = 0;
        for (const mode of DataModes) {
          slow += sink.data[mode].receiversTooSlow;
          overflow += sink.data[mode].receiversOverflowed;
        }
        this.reset();
        this.inc({ reason: 'receiver-too-slow' }, slow);
        this.inc({ reason: 'resume-buffer-overflow' }, overflow);
      },
    });

    const queueHistogram = new Histogram({
      name: 'backchannel_connection_queued_bytes',
      help: 'Bytes waiting in each client’s outbound queue, as a distribution over clients taken at scrape time (not cumulative)',
      buckets: QUEUE_BUCKETS,
      registers: [r],
    });
    new Gauge({
      name: 'backchannel_queued_bytes',
      help: 'Bytes waiting in all clients’ outbound queues',
      registers: [r],
      collect() {
        let total = 0;
        queueHistogram.reset();
        source.eachQueue((bytes) => {
          total += bytes;
          queueHistogram.observe(bytes);
        });
        this.set(total);
      },
    });

    this.#joins = new Histogram({
      name: 'backchannel_join_duration_seconds',
      help: 'Time the server took to handle a join (conference) or an accept (1:1 call), from request to reply, s',
      labelNames: ['kind'],
      buckets: JOIN_BUCKETS,
      registers: [r],
    });
    this.#handshakeFailures = new Counter({
      name: 'backchannel_handshake_failures_total',
      help: 'Connections refused in their handshake, by error code (token-expired, hello-timeout, …)',
      labelNames: ['code'],
      registers: [r],
    });
    this.#resumes = new Counter({ name: 'backchannel_resumes_total', help: 'Clients that resumed their participant on a new connection', registers: [r] });

    const webhookFields: [Exclude<keyof WebhookCounters, 'url'>, string, string, 'gauge' | 'counter'][] = [
      ['delivered', 'backchannel_webhook_deliveries_total', 'Webhook events delivered (2xx), by URL', 'counter'],
      ['failedAttempts', 'backchannel_webhook_failed_attempts_total', 'Webhook attempts that failed (no 2xx, network error or timeout), by URL', 'counter'],
      ['retries', 'backchannel_webhook_retries_total', 'Webhook attempts scheduled again after a failure, by URL', 'counter'],
      ['dropped', 'backchannel_webhook_dropped_total', 'Webhook events given up on (attempts exhausted, queue full, or shutdown), by URL', 'counter'],
      ['pending', 'backchannel_webhook_queue_depth', 'Webhook events queued, waiting for a retry or in flight, by URL', 'gauge'],
    ];
    for (const [field, name, help, type] of webhookFields) {
      const collect = function (this: Counter<'url'> | Gauge<'url'>): void {
        this.reset();
        for (const w of source.webhooks()) (this as Gauge<'url'>).inc({ url: w.url }, w[field]);
      };
      if (type === 'gauge') new Gauge({ name, help, labelNames: ['url'], registers: [r], collect });
      else new Counter({ name, help, labelNames: ['url'], registers: [r], collect });
    }
  }

  /** Records how long a join (`conference`) or a call accept (`call`) took to handle, ms. */
  joined(kind: 'conference' | 'call', ms: number): void {
    this.#joins.observe({ kind }, ms / 1000);
  }

  /** Counts a connection refused in its handshake with `code`. */
  handshakeFailed(code: string): void {
    this.#handshakeFailures.inc({ code });
  }

  /** Counts a resume. */
  resumed(): void {
    this.#resumes.inc();
  }

  /**
   * The exposition: content type and text. Samples without a value are left out: prom-client
   * writes `Nan` for an event-loop lag with no measurement since the last scrape (a scrape within
   * 10 ms of the one before), which strict parsers refuse and which means "no sample" anyway.
   */
  async scrape(): Promise<{ contentType: string; body: string }> {
    let body = await this.registry.metrics();
    if (body.includes(' Nan\n')) body = body.replace(/^[^#\n][^\n]* Nan\n/gm, '');
    return { contentType: this.registry.contentType, body };
  }
}

/** A counter by mode whose value is read from the sink's counters at scrape time. */
function dataCounter(r: Registry, sink: MetricsSink, name: string, help: string, read: (c: DataCounters) => number): void {
  new Counter({
    name,
    help,
    labelNames: ['mode'],
    registers: [r],
    collect() {
      this.reset();
      for (const mode of DataModes) this.inc({ mode }, read(sink.data[mode]));
    },
  });
}
