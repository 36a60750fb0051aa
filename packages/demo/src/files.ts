/**
 * File sharing: drop a file (or choose one) and it goes to everyone as a data stream
 * (`sendFile`), chunk by chunk with backpressure. Both sides show progress; the receiving SDK
 * checks the SHA-256 the sender put in the stream's trailer, the page shows that digest on both
 * sides, offers the file for download, and tells the sender it arrived intact.
 */
import { platform, type Client, type Conference, type StreamReader } from '@backchannel/client';
import { Disposer, formatBytes, h } from './dom.js';
import { explain } from './explain.js';
import type { LivePanel } from './live.js';
import type { Receipts } from './receipts.js';
import { transportFor } from './transports.js';
import { TOPIC_FILES, type Receipt } from './wire.js';

/** Largest file hashed with WebCrypto in one piece; larger ones are hashed incrementally. */
const WEBCRYPTO_MAX_BYTES = 256 * 1024 * 1024;
const HASH_SLICE = 4 * 1024 * 1024;

/** SHA-256 of a blob as lowercase hex: WebCrypto where available, else the SDK's own hasher. */
export async function sha256Hex(blob: Blob): Promise<string> {
  if (globalThis.crypto?.subtle && blob.size <= WEBCRYPTO_MAX_BYTES) {
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()));
    return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
  }
  const hasher = platform.createHasher();
  for (let off = 0; off < blob.size; off += HASH_SLICE) hasher.update(new Uint8Array(await blob.slice(off, off + HASH_SLICE).arrayBuffer()));
  return hasher.hex();
}

/** One transfer's row: name, progress bar, status. */
class TransferRow {
  readonly element: HTMLLIElement;
  readonly #bar: HTMLProgressElement;
  readonly #status: HTMLElement;
  readonly #extra: HTMLElement;
  readonly #startedAt = performance.now();
  #frame = 0;
  #bytes = 0;

  constructor(direction: 'in' | 'out', name: string, size: number | undefined, peer: string) {
    this.#bar = h('progress', { max: size ?? 1, value: 0, 'aria-label': `${direction === 'in' ? 'Receiving' : 'Sending'} ${name}` });
    this.#status = h('span', { class: 'transfer-status', 'data-state': 'active' }, direction === 'in' ? 'receiving…' : 'sending…');
    this.#extra = h('div', { class: 'transfer-extra' });
    this.element = h(
      'li',
      { class: `transfer ${direction}`, 'data-direction': direction, 'data-name': name },
      h('div', { class: 'transfer-head' }, h('span', { class: 'dir', 'aria-hidden': 'true' }, direction === 'in' ? '↓' : '↑'), h('span', { class: 'file-name' }, name), h('span', { class: 'muted' }, `${size === undefined ? '' : formatBytes(size)} ${direction === 'in' ? `from ${peer}` : `to ${peer}`}`)),
      this.#bar,
      this.#status,
      this.#extra,
    );
  }

  /** Progress in bytes (drawn on the next frame). */
  progress(bytes: number, total: number | undefined): void {
    this.#bytes = bytes;
    if (this.#frame) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0;
      this.#bar.value = this.#bytes;
      const secs = (performance.now() - this.#startedAt) / 1000;
      const rate = secs > 0 ? ` · ${formatBytes(this.#bytes / secs)}/s` : '';
      this.#status.textContent = `${formatBytes(this.#bytes)}${total === undefined ? '' : ` of ${formatBytes(total)}`}${rate}`;
      this.element.dataset.bytes = String(this.#bytes);
    });
  }

  done(state: 'verified' | 'sent' | 'failed', text: string): void {
    cancelAnimationFrame(this.#frame);
    this.#frame = 0;
    if (state !== 'failed') this.#bar.value = this.#bar.max;
    this.#status.dataset.state = state;
    this.#status.textContent = text;
    this.element.dataset.state = state;
  }

  extra(...nodes: Node[]): void {
    this.#extra.append(...nodes);
  }

  digest(hex: string): void {
    this.extra(h('code', { class: 'sha256', title: hex }, `SHA-256 ${hex}`));
  }
}

export class Files {
  readonly element: HTMLElement;
  readonly #room: Conference;
  readonly #receipts: Receipts;
  readonly #list: HTMLOListElement;
  readonly #zone: HTMLElement;
  readonly #input: HTMLInputElement;
  readonly #disposer = new Disposer();
  readonly #urls: string[] = [];
  /** Outgoing transfers by their `transfer` attribute, for receipts. */
  readonly #sent = new Map<string, TransferRow>();
  readonly #counters = { outChunks: 0, outBytes: 0, inChunks: 0, inBytes: 0 };
  #nextTransfer = 1;

  constructor(client: Client, room: Conference, receipts: Receipts, live: LivePanel) {
    this.#room = room;
    this.#receipts = receipts;
    const transport = transportFor(client, 'reliable-message');
    this.#list = h('ol', { class: 'transfers', 'aria-live': 'polite', 'aria-label': 'File transfers' });
    this.#input = h('input', { type: 'file', id: 'file-input', class: 'visually-hidden', multiple: true, tabindex: -1 });
    const choose = h('button', { type: 'button', class: 'choose' }, 'Choose a file…');
    choose.addEventListener('click', () => this.#input.click());
    this.#zone = h('div', { class: 'dropzone' }, h('p', {}, 'Drop a file anywhere on the page to send it to everyone, or'), choose, this.#input);
    this.element = h(
      'section',
      { class: 'panel files', 'aria-labelledby': 'files-title' },
      h('h2', { id: 'files-title' }, 'Files ', h('span', { class: 'badge', title: `data streams on reliable-message sessions: ${transport.note}` }, `data stream · ${transport.name}`)),
      this.#zone,
      this.#list,
    );
    const d = this.#disposer;
    d.listen(this.#input, 'change', () => {
      for (const file of this.#input.files ?? []) void this.send(file);
      this.#input.value = '';
    });
    d.listen(window, 'dragover', (e) => {
      if (!e.dataTransfer?.types.includes('Files')) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
      this.#zone.classList.add('over');
    });
    d.listen(window, 'dragleave', (e) => {
      if (e.relatedTarget === null) this.#zone.classList.remove('over');
    });
    d.listen(window, 'drop', (e) => {
      if (!e.dataTransfer?.files.length) return;
      e.preventDefault();
      this.#zone.classList.remove('over');
      for (const file of e.dataTransfer.files) void this.send(file);
    });
    room.registerStreamHandler(TOPIC_FILES, (reader, { from }) => this.#receive(reader as StreamReader<Uint8Array>, from));
    d.add(() => room.unregisterStreamHandler(TOPIC_FILES));
    d.add(receipts.on((r, from) => r.kind === 'file' && this.#onReceipt(r, from)));
    d.add(live.add({ session: 'files', mode: 'data stream', direction: 'out', read: () => ({ messages: this.#counters.outChunks, bytes: this.#counters.outBytes }) }));
    d.add(live.add({ session: 'files', mode: 'data stream', direction: 'in', read: () => ({ messages: this.#counters.inChunks, bytes: this.#counters.inBytes }) }));
    d.add(() => this.#urls.forEach((u) => URL.revokeObjectURL(u)));
  }

  /** Sends `file` to everyone in the room. */
  async send(file: File): Promise<void> {
    const others = [...this.#room.participants.values()];
    const row = new TransferRow('out', file.name, file.size, others.length === 0 ? 'no one yet' : others.length === 1 ? others[0]!.displayName : `${others.length} others`);
    this.#list.prepend(row.element);
    const transfer = `${this.#room.self?.id ?? 'me'}-${this.#nextTransfer++}`;
    this.#sent.set(transfer, row);
    let last = 0;
    try {
      await this.#room.sendFile(TOPIC_FILES, file, {
        attributes: { transfer },
        onProgress: ({ bytes, total }) => {
          this.#counters.outChunks++;
          this.#counters.outBytes += bytes - last;
          last = bytes;
          row.progress(bytes, total);
        },
      });
      if (row.element.dataset.state !== 'verified') row.done('sent', others.length === 0 ? 'sent (no one else is here)' : 'sent · waiting for receivers to verify');
      row.digest(await sha256Hex(file));
    } catch (error) {
      const e = explain(error);
      row.done('failed', `failed: ${e.detail} (${e.code})`);
    }
  }

  dispose(): void {
    this.#disposer.dispose();
  }

  async #receive(reader: StreamReader<Uint8Array>, from: string): Promise<void> {
    const info = reader.info;
    const name = info.name ?? 'file';
    const sender = this.#room.participants.get(from)?.displayName ?? from;
    const row = new TransferRow('in', name, info.totalLength, sender);
    this.#list.prepend(row.element);
    const transfer = info.attributes?.transfer;
    let last = 0;
    reader.on('progress', ({ bytes, total }) => {
      this.#counters.inChunks++;
      this.#counters.inBytes += bytes - last;
      last = bytes;
      row.progress(bytes, total);
    });
    const chunks: Uint8Array[] = [];
    try {
      // The iterator ends only after the SDK has checked the SHA-256 in the trailer; a mismatch throws `stream-integrity`.
      for await (const chunk of reader) chunks.push(chunk);
    } catch (error) {
      const e = explain(error);
      row.done('failed', `failed: ${e.detail} (${e.code})`);
      if (transfer) this.#receipts.fileReceived({ kind: 'file', to: from, stream: transfer, ok: false, error: e.code });
      return;
    }
    const blob = new Blob(chunks as BlobPart[], { type: info.mimeType || 'application/octet-stream' });
    const hex = await sha256Hex(blob);
    const url = URL.createObjectURL(blob);
    this.#urls.push(url);
    row.done('verified', `received ${formatBytes(blob.size)} · SHA-256 verified`);
    row.digest(hex);
    row.extra(h('a', { class: 'download', href: url, download: name }, `Download ${name}`));
    if (transfer) this.#receipts.fileReceived({ kind: 'file', to: from, stream: transfer, ok: true, sha256: hex });
  }

  #onReceipt(r: Extract<Receipt, { kind: 'file' }>, from: string): void {
    const row = this.#sent.get(r.stream);
    if (!row) return;
    const name = this.#room.participants.get(from)?.displayName ?? from;
    row.extra(h('div', { class: r.ok ? 'receipt ok' : 'receipt failed' }, r.ok ? `✓ ${name} verified it` : `✗ ${name} could not receive it (${r.error ?? 'error'})`));
    if (r.ok) row.done('verified', 'sent · verified by receivers');
  }
}
