/**
 * The live panel: messages/s and bytes/s in and out per data session, queue depth, queue-too-long
 * events, round-trip time and cursor delay, sampled twice a second and drawn as small charts.
 */
import type { Client } from '@backchannel/client';
import { Sparkline } from './chart.js';
import { Disposer, formatBytes, h, replace } from './dom.js';

/** Counters of one direction of one session, read on every sample. */
export interface ProbeReading {
  messages: number;
  bytes: number;
  /** Send side: bytes queued locally plus what the server holds for the slowest receiver. */
  queuedBytes?: number;
  /** Unreliable data dropped (locally, by the server, or for this receiver). */
  dropped?: number;
}

export interface Probe {
  /** What the session carries: `chat`, `cursors`, … */
  session: string;
  /** Delivery mode, or `data stream` for the SDK's topic streams. */
  mode: string;
  direction: 'in' | 'out';
  read(): ProbeReading;
}

interface Row {
  probe: Probe;
  last: ProbeReading;
  queueTooLong: number;
  cells: { rate: HTMLElement; bps: HTMLElement; total: HTMLElement; queue: HTMLElement; dropped: HTMLElement; events: HTMLElement };
}

const SAMPLE_MS = 500;
const SAMPLES = 120;
const DELAY_WINDOW = 500;

export class LivePanel {
  readonly element: HTMLElement;
  readonly #client: Client;
  readonly #rows: Row[] = [];
  readonly #tbody: HTMLTableSectionElement;
  readonly #events: HTMLOListElement;
  readonly #charts: { messages: Sparkline; bytes: Sparkline; queue: Sparkline; rtt: Sparkline };
  readonly #disposer = new Disposer();
  #lastAt = performance.now();
  #cursorDelays: number[] = [];
  /** Median cursor delay of the last sample that had any. */
  #cursorDelay: number | undefined;
  /** The last {@link DELAY_WINDOW} cursor delays, for percentiles. */
  #delayWindow: number[] = [];
  readonly #delayText: HTMLElement;
  readonly #controls: HTMLElement;

  constructor(client: Client) {
    this.#client = client;
    this.#tbody = h('tbody');
    this.#events = h('ol', { class: 'events', 'aria-live': 'polite' });
    this.#delayText = h('p', { class: 'delay-stats muted', title: "from the sending page's send() to this page's receive callback, by the two pages' clocks: exact for tabs on one machine, off by the clock difference across machines" }, 'cursor delay: no cursor seen yet');
    const rate = (v: number) => (v >= 100 ? String(Math.round(v)) : v.toFixed(1));
    this.#charts = {
      messages: new Sparkline('Messages/s', [{ label: 'in', color: '#2563eb' }, { label: 'out', color: '#d97706' }], SAMPLES, rate),
      bytes: new Sparkline('Bytes/s', [{ label: 'in', color: '#2563eb' }, { label: 'out', color: '#d97706' }], SAMPLES, (v) => `${formatBytes(v)}/s`),
      queue: new Sparkline('Queue depth', [{ label: 'queued', color: '#7c3aed' }], SAMPLES, formatBytes),
      rtt: new Sparkline('Latency', [{ label: 'heartbeat rtt', color: '#059669' }, { label: 'cursor delay', color: '#db2777' }], SAMPLES, (v) => `${v.toFixed(1)} ms`),
    };
    const table = h(
      'table',
      { class: 'sessions' },
      h('thead', {}, h('tr', {}, ...['session', 'mode', '', 'msg/s', 'bytes/s', 'total', 'queue', 'dropped', 'queueTooLong'].map((t) => h('th', { scope: 'col' }, t)))),
      this.#tbody,
    );
    this.#controls = h('div', { class: 'live-controls' });
    this.element = h(
      'section',
      { class: 'panel live', 'aria-labelledby': 'live-title' },
      h('h2', { id: 'live-title' }, 'Live'),
      this.#controls,
      h('div', { class: 'charts' }, this.#charts.messages.element, this.#charts.bytes.element, this.#charts.queue.element, this.#charts.rtt.element, this.#delayText),
      h('div', { class: 'live-side' }, h('div', { class: 'table-wrap' }, table), h('h3', {}, 'queueTooLong events'), this.#events),
    );
    replace(this.#events, h('li', { class: 'muted' }, 'none yet: a sender that outruns its slowest receiver gets one'));
    this.#disposer.interval(() => this.#sample(), SAMPLE_MS);
  }

  /** Puts `control` (e.g. a button that makes traffic) at the top of the panel. */
  addControl(control: HTMLElement): void {
    this.#controls.appendChild(control);
  }

  /** Starts showing `probe`; returns a function that removes it. */
  add(probe: Probe): () => void {
    const td = (cls = '') => h('td', { class: cls });
    const cells = { rate: td('num'), bps: td('num'), total: td('num'), queue: td('num'), dropped: td('num'), events: td('num') };
    const tr = h('tr', { 'data-session': probe.session, 'data-direction': probe.direction }, h('th', { scope: 'row' }, probe.session), h('td', {}, probe.mode), h('td', { 'aria-label': probe.direction }, probe.direction === 'in' ? '↓ in' : '↑ out'), cells.rate, cells.bps, cells.total, cells.queue, cells.dropped, cells.events);
    const row: Row = { probe, last: probe.read(), queueTooLong: 0, cells };
    this.#rows.push(row);
    this.#tbody.appendChild(tr);
    cells.events.textContent = '0';
    return () => {
      const i = this.#rows.indexOf(row);
      if (i >= 0) this.#rows.splice(i, 1);
      tr.remove();
    };
  }

  /** Records a `queueTooLong` event of a send session. */
  queueTooLong(session: string, triggered: boolean): void {
    const row = this.#rows.find((r) => r.probe.session === session && r.probe.direction === 'out');
    if (row && triggered) row.cells.events.textContent = String(++row.queueTooLong);
    if (this.#events.querySelector('.muted')) replace(this.#events);
    const time = new Date().toLocaleTimeString();
    this.#events.prepend(h('li', { class: triggered ? 'warn' : '' }, `${time} ${session}: ${triggered ? 'queue too long (slow down)' : 'queue drained below the low-water mark'}`));
    while (this.#events.children.length > 8) this.#events.lastElementChild?.remove();
  }

  /** One cursor update's delay from its sender's send to its arrival here, ms. */
  cursorDelay(ms: number): void {
    if (this.#cursorDelays.length < 1000) this.#cursorDelays.push(ms);
  }

  dispose(): void {
    this.#disposer.dispose();
  }

  #sample(): void {
    const now = performance.now();
    const dt = (now - this.#lastAt) / 1000;
    this.#lastAt = now;
    let msgIn = 0;
    let msgOut = 0;
    let bytesIn = 0;
    let bytesOut = 0;
    let queued = 0;
    for (const row of this.#rows) {
      const r = row.probe.read();
      const messages = Math.max(0, r.messages - row.last.messages) / dt;
      const bytes = Math.max(0, r.bytes - row.last.bytes) / dt;
      row.last = r;
      row.cells.rate.textContent = messages >= 100 ? String(Math.round(messages)) : messages.toFixed(1);
      row.cells.bps.textContent = formatBytes(bytes);
      row.cells.total.textContent = formatBytes(r.bytes);
      row.cells.queue.textContent = r.queuedBytes === undefined ? '' : formatBytes(r.queuedBytes);
      row.cells.dropped.textContent = r.dropped === undefined ? '' : String(r.dropped);
      if (row.probe.direction === 'in') {
        msgIn += messages;
        bytesIn += bytes;
      } else {
        msgOut += messages;
        bytesOut += bytes;
        queued += r.queuedBytes ?? 0;
      }
    }
    this.#charts.messages.push(msgIn, msgOut);
    this.#charts.bytes.push(bytesIn, bytesOut);
    this.#charts.queue.push(queued);
    const fresh = this.#cursorDelays.splice(0);
    const delays = [...fresh].sort((a, b) => a - b);
    if (delays.length) {
      this.#cursorDelay = delays[Math.floor(delays.length / 2)];
      this.#delayWindow.push(...fresh);
      this.#delayWindow.splice(0, Math.max(0, this.#delayWindow.length - DELAY_WINDOW));
      const all = [...this.#delayWindow].sort((a, b) => a - b);
      const pct = (p: number) => all[Math.min(all.length - 1, Math.floor((p / 100) * all.length))]!.toFixed(1);
      this.#delayText.textContent = `cursor delay (send → arrival, last ${all.length}): p50 ${pct(50)} ms · p95 ${pct(95)} ms · p99 ${pct(99)} ms`;
    }
    this.#charts.rtt.push(this.#client.rtt, this.#cursorDelay);
  }
}
