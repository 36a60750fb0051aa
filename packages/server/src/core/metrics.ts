/**
 * The core's metrics sink: where the core counts what it does, off the hot path. Per-frame
 * counting is a plain integer field incremented in place on an object the data path already holds
 * (no call, no allocation, no label lookup); whoever exports metrics reads the fields when it is
 * scraped. Counts that can be read from the core's state (rooms, participants, open sessions) are
 * not counted here at all: the exporter walks the state at scrape time.
 */
import { DataModes, type DataMode } from '@backchannel/protocol';

/** Counters of one data mode, incremented in place by the data path. */
export interface DataCounters {
  /** Data frames received from senders. */
  framesIn: number;
  /** Complete messages received from senders (frames with the final-fragment flag). */
  messagesIn: number;
  /** Payload bytes received from senders. */
  bytesIn: number;
  /** Data frames queued for receivers (one per receiver). */
  framesOut: number;
  /** Complete messages queued for receivers (one per receiver). */
  messagesOut: number;
  /** Payload bytes queued for receivers (counted once per receiver). */
  bytesOut: number;
  /** Unreliable frames dropped under congestion or for a receiver that was away. */
  dropped: number;
  /** Send sessions opened. */
  sessionsOpened: number;
  /** Send sessions closed. */
  sessionsClosed: number;
  /** Receivers detached from a session because they fell too far behind (`receiver-too-slow`). */
  receiversTooSlow: number;
  /** Receivers detached because too much was held for them while they were away. */
  receiversOverflowed: number;
}

/** What the core counts into. Injected through the hub's options; a fresh {@link createMetricsSink} by default. */
export interface MetricsSink {
  /** Counters per data mode. */
  readonly data: Readonly<Record<DataMode, DataCounters>>;
}

/** A sink with every counter at zero. Cheap enough to be the default even when nothing reads it. */
export function createMetricsSink(): MetricsSink {
  const data = {} as Record<DataMode, DataCounters>;
  for (const mode of DataModes) {
    data[mode] = {
      framesIn: 0,
      messagesIn: 0,
      bytesIn: 0,
      framesOut: 0,
      messagesOut: 0,
      bytesOut: 0,
      dropped: 0,
      sessionsOpened: 0,
      sessionsClosed: 0,
      receiversTooSlow: 0,
      receiversOverflowed: 0,
    };
  }
  return { data: Object.freeze(data) };
}
