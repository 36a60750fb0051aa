/**
 * When to try again after a lost connection: exponential backoff with jitter. The first attempt
 * is immediate (a blip is usually over by then); each later one waits twice as long as the one
 * before, up to a ceiling, shortened by a random fraction so that many clients cut off together do
 * not come back together.
 */
import { BackchannelError, ErrorCode } from '@backchannel/protocol';

/** Options of automatic reconnection. Times in milliseconds. */
export interface ReconnectOptions {
  /** Delay before the first attempt. Default 0 (at once). */
  firstDelayMs?: number;
  /** Delay before the second attempt; doubled for each next one. Default 250. */
  baseDelayMs?: number;
  /** Longest delay between two attempts. Default 5 000. */
  maxDelayMs?: number;
  /** Each delay after the first is shortened by a random fraction of at most this (0–1). Default 0.5. */
  jitter?: number;
  /** Give up (final `disconnected`) when not reconnected this long after the loss. Default 60 000. */
  timeoutMs?: number;
}

export type ResolvedReconnectOptions = Readonly<Required<ReconnectOptions>>;

export const DEFAULT_RECONNECT: ResolvedReconnectOptions = Object.freeze({
  firstDelayMs: 0,
  baseDelayMs: 250,
  maxDelayMs: 5_000,
  jitter: 0.5,
  timeoutMs: 60_000,
});

/** Validates reconnect options (`false`: never reconnect). */
export function resolveReconnect(input: boolean | ReconnectOptions | undefined): ResolvedReconnectOptions | false {
  if (input === false) return false;
  if (input === undefined || input === true) return DEFAULT_RECONNECT;
  if (typeof input !== 'object' || input === null) throw new BackchannelError(ErrorCode.InvalidArgument, 'option reconnect must be a boolean or an object');
  const out = { ...DEFAULT_RECONNECT, ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) } as Required<ReconnectOptions>;
  for (const key of Object.keys(DEFAULT_RECONNECT) as (keyof ReconnectOptions)[]) {
    const v = out[key];
    if (!(key in DEFAULT_RECONNECT)) throw new BackchannelError(ErrorCode.InvalidArgument, `unknown reconnect option ${key}`);
    const ok = key === 'jitter' ? typeof v === 'number' && v >= 0 && v <= 1 : Number.isInteger(v) && v >= 0;
    if (!ok) throw new BackchannelError(ErrorCode.InvalidArgument, `option reconnect.${key} must be ${key === 'jitter' ? 'a number from 0 to 1' : 'a non-negative integer'}`);
  }
  if (out.baseDelayMs > out.maxDelayMs) throw new BackchannelError(ErrorCode.InvalidArgument, 'option reconnect.baseDelayMs must not exceed maxDelayMs');
  return Object.freeze(out);
}

/** Delay before attempt number `attempt` (1 = the first), ms. */
export function reconnectDelay(attempt: number, o: ResolvedReconnectOptions, random: () => number = Math.random): number {
  if (attempt <= 1) return o.firstDelayMs;
  const full = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** Math.min(attempt - 2, 30));
  return Math.round(full * (1 - o.jitter * random()));
}
