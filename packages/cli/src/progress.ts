/** Progress bars (on stderr, drawn only when it is a terminal) and throughput lines. */
import cliProgress from 'cli-progress';

const MiB = 1024 * 1024;

/** `48.0 MiB in 2.10 s (22.9 MiB/s)`. */
export function rate(bytes: number, ms: number): string {
  const s = Math.max(ms, 1) / 1000;
  return `${(bytes / MiB).toFixed(1)} MiB in ${s.toFixed(2)} s (${(bytes / MiB / s).toFixed(1)} MiB/s)`;
}

/** A progress bar for a transfer of `total` bytes (unknown: 0), started at 0. */
export class ProgressBar {
  readonly #bar: cliProgress.SingleBar;
  readonly #start = performance.now();

  constructor(label: string, total: number | undefined) {
    this.#bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {percentage}% | {value}/{total} bytes | {speed} MiB/s`, hideCursor: true, stream: process.stderr },
      cliProgress.Presets.shades_classic,
    );
    this.#bar.start(total ?? 0, 0, { speed: '0.0' });
  }

  /** Moves the bar to `bytes` done. */
  update(bytes: number): void {
    const seconds = (performance.now() - this.#start) / 1000 || 1;
    this.#bar.update(bytes, { speed: (bytes / MiB / seconds).toFixed(1) });
  }

  stop(): void {
    this.#bar.stop();
  }
}
