/**
 * Scraping a server's `GET /metrics` and reading it with a real Prometheus text-format parser
 * (`prom2javascript`), the way a Prometheus server would see it.
 */
import { getMetricsFromIterator, type PromHistogramData, type PromMetrics } from 'prom2javascript';

/** A parsed scrape. */
export class Scrape {
  constructor(readonly families: PromMetrics) {}

  /** Whether the scrape has a family named `name` (with or without samples). */
  has(name: string): boolean {
    return Object.hasOwn(this.families, name);
  }

  /** The family `name`'s type (`counter`, `gauge`, `histogram`, …). */
  type(name: string): string | undefined {
    return this.families[name]?.type;
  }

  /**
   * The value of the sample of `name` whose labels include `labels` (a histogram's count);
   * undefined if there is none.
   */
  value(name: string, labels: Record<string, string> = {}): number | undefined {
    const data = (this.families[name]?.data ?? []) as { labels: Record<string, string>; value?: number; count?: number }[];
    const sample = data.find((d) => Object.entries(labels).every(([k, v]) => d.labels[k] === v));
    if (!sample) return undefined;
    return sample.value ?? (sample as PromHistogramData).count;
  }
}

/** Scrapes `url` (…/metrics); throws with the status and body unless it answers 200. */
export async function scrape(url: string, token?: string): Promise<Scrape> {
  const res = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${text}`);
  if (!res.headers.get('content-type')?.startsWith('text/plain; version=0.0.4')) throw new Error(`unexpected content type ${res.headers.get('content-type')}`);
  return new Scrape(await getMetricsFromIterator(text.split('\n')[Symbol.iterator]()));
}

/**
 * Scrapes until `predicate` holds (counters move once the server has handled what the test did,
 * which the test cannot observe directly); rejects after `timeoutMs` with the last value seen.
 */
export async function scrapeUntil(url: string, predicate: (s: Scrape) => boolean, token?: string, timeoutMs = 10_000): Promise<Scrape> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await scrape(url, token);
    if (predicate(s)) return s;
    if (Date.now() > deadline) throw new Error('timed out waiting for the metrics to satisfy the condition');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
