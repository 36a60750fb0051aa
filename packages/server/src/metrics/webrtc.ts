/**
 * Prometheus metrics of the WebRTC datagram path (docs/deployment.md, docs/webrtc.md), read from
 * the gateway's counters at scrape time only.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { WebRtcCounters, WebRtcGateway } from '../transport/webrtc.js';

type CountField = Exclude<keyof WebRtcCounters, 'negotiationMs'>;

/** Registers the `backchannel_webrtc_*` metrics of `gateway` on `registry`. */
export function registerWebRtcMetrics(registry: Registry, gateway: WebRtcGateway): void {
  const c = gateway.counters;
  new Gauge({
    name: 'backchannel_webrtc_peer_connections',
    help: 'Peer connections open or negotiating',
    registers: [registry],
    collect() {
      this.set(gateway.size);
    },
  });
  const counter = (name: string, help: string, field: CountField) => {
    let seen = 0;
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        // The gateway's counts only grow: the counter takes the difference since the last scrape.
        const now = c[field];
        if (now > seen) this.inc(now - seen);
        seen = now;
      },
    });
  };
  counter('backchannel_webrtc_offers_total', 'WebRTC offers answered', 'offers');
  counter('backchannel_webrtc_opened_total', 'WebRTC data channels that opened', 'opened');
  counter('backchannel_webrtc_failed_total', 'Peer connections that could not be made, did not open in time or failed later (their clients fell back to the WebSocket)', 'failed');
  counter('backchannel_webrtc_refused_total', 'Malformed WebRTC offers and candidates refused', 'refused');
  counter('backchannel_webrtc_datagrams_in_total', 'Datagrams received over data channels', 'datagramsIn');
  counter('backchannel_webrtc_datagrams_out_total', 'Datagrams sent over data channels', 'datagramsOut');
  counter('backchannel_webrtc_datagrams_dropped_total', 'Datagrams dropped: a full channel buffer, or a sender over its data limits', 'datagramsDropped');
  counter('backchannel_webrtc_messages_incomplete_total', 'Fragmented unreliable messages dropped whole because a fragment was lost', 'messagesIncomplete');
}
