/** A small line chart on a canvas: one or two series over the last N samples, auto-scaled. */
import { h } from './dom.js';

export interface Series {
  label: string;
  /** CSS colour of the line. */
  color: string;
}

export class Sparkline {
  readonly element: HTMLElement;
  readonly #canvas: HTMLCanvasElement;
  readonly #value: HTMLElement;
  readonly #series: Series[];
  readonly #data: number[][];
  readonly #capacity: number;
  readonly #format: (v: number) => string;

  /**
   * @param title What the chart shows (also its accessible name).
   * @param capacity Samples kept (the chart's width in samples).
   * @param format Formats the latest values shown beside the title.
   */
  constructor(title: string, series: Series[], capacity: number, format: (v: number) => string) {
    this.#series = series;
    this.#capacity = capacity;
    this.#format = format;
    this.#data = series.map(() => []);
    this.#canvas = h('canvas', { width: 240, height: 56, role: 'img', 'aria-label': title });
    this.#value = h('span', { class: 'chart-value' });
    const legend = series.map((s) => h('span', { class: 'legend' }, h('i', { class: 'swatch', 'data-color': s.color }), s.label));
    this.element = h('figure', { class: 'chart' }, h('figcaption', {}, h('span', { class: 'chart-title' }, title), this.#value), this.#canvas, h('div', { class: 'legends' }, ...legend));
    for (const sw of this.element.querySelectorAll<HTMLElement>('.swatch')) sw.style.background = sw.dataset.color ?? '';
  }

  /** Adds one sample per series (undefined = no value, drawn as a gap) and redraws. */
  push(...values: (number | undefined)[]): void {
    values.forEach((v, i) => {
      const d = this.#data[i]!;
      d.push(v ?? Number.NaN);
      if (d.length > this.#capacity) d.shift();
    });
    this.#value.textContent = values.map((v, i) => `${this.#series[i]!.label} ${v === undefined ? '–' : this.#format(v)}`).join(' · ');
    this.#draw();
  }

  #draw(): void {
    const canvas = this.#canvas;
    const ratio = window.devicePixelRatio || 1;
    const cssWidth = canvas.clientWidth || 240;
    const cssHeight = canvas.clientHeight || 56;
    if (canvas.width !== Math.round(cssWidth * ratio)) canvas.width = Math.round(cssWidth * ratio);
    if (canvas.height !== Math.round(cssHeight * ratio)) canvas.height = Math.round(cssHeight * ratio);
    const ctx = canvas.getContext('2d');
    if (!ctx) return;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, cssWidth, cssHeight);
    let max = 0;
    for (const d of this.#data) for (const v of d) if (Number.isFinite(v) && v > max) max = v;
    if (max === 0) max = 1;
    const step = cssWidth / Math.max(1, this.#capacity - 1);
    this.#data.forEach((d, i) => {
      ctx.strokeStyle = this.#series[i]!.color;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      let pen = false;
      const offset = this.#capacity - d.length;
      d.forEach((v, j) => {
        if (!Number.isFinite(v)) {
          pen = false;
          return;
        }
        const x = (offset + j) * step;
        const y = cssHeight - 2 - (v / max) * (cssHeight - 4);
        if (pen) ctx.lineTo(x, y);
        else ctx.moveTo(x, y);
        pen = true;
      });
      ctx.stroke();
    });
  }
}
