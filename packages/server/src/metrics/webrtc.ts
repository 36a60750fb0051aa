/**
 * Prometheus metrics of the WebRTC datagram path (docs/deployment.md, docs/webrtc.md), read from
 * the gateway's counters at scrape time only.
 */
import { Gauge, type Registry } from 'prom-client';
import type { WebRtcGateway } from '../transport/webrtc.js';

/** Registers the `backchannel_webrtc_*` metrics of `gateway` on `registry`. */
export function registerWebRtcMetrics(registry: Registry, gateway: WebRtcGateway): void {
  const c = gateway.counters;
  const counter = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  counter('backchannel_webrtc_peer_connections', 'Peer connections open or negotiating', () => gateway.size);
  counter('backchannel_webrtc_offers_total', 'WebRTC offers answered', () => c.offers);
  counter('backchannel_webrtc_opened_total', 'WebRTC data channels that opened', () => c.opened);
  counter('backchannel_webrtc_failed_total', 'Peer connections that did not open in time or failed later (their clients fell back to the WebSocket)', () => c.failed);
  counter('backchannel_webrtc_refused_total', 'Malformed WebRTC offers and candidates refused', () => c.refused);
  counter('backchannel_webrtc_datagrams_in_total', 'Datagrams received over data channels', () => c.datagramsIn);
  counter('backchannel_webrtc_datagrams_out_total', 'Datagrams sent over data channels', () => c.datagramsOut);
  counter('backchannel_webrtc_datagrams_dropped_total', 'Datagrams dropped: a full channel buffer, or a sender over its data limits', () => c.datagramsDropped);
  counter('backchannel_webrtc_messages_incomplete_total', 'Fragmented unreliable messages dropped whole because a fragment was lost', () => c.messagesIncomplete);
}
