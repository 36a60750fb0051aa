/**
 * Which transport carries each delivery mode: every mode rides the client's WebSocket, except
 * `unreliable` while the SDK has a WebRTC data channel open (`client.transport`, docs/webrtc.md).
 */
import type { Client, DataMode } from '@backchannel/client';

export interface TransportLabel {
  /** Short name for the badge: `WebSocket`, `WebSocket (TLS)`. */
  name: string;
  /** What the mode means on that transport, for the badge's description. */
  note: string;
}

/** The transport the demo's `client` uses for `mode` now (it changes: see `client.on('transportChanged')`). */
export function transportFor(client: Client, mode: DataMode): TransportLabel {
  const name = location.protocol === 'https:' ? 'WebSocket (TLS)' : 'WebSocket';
  switch (mode) {
    case 'unreliable':
      if (client.transport.unreliable === 'webrtc') return { name: 'WebRTC', note: 'datagrams: unordered, never retransmitted; a lost position is simply replaced by the next' };
      return { name, note: `TCP: ordered; under congestion the oldest positions are dropped, never retransmitted${client.transport.reason ? ` (WebRTC: ${client.transport.reason.message})` : ''}` };
    case 'reliable-bytes':
      return { name, note: 'ordered and lossless byte stream' };
    default:
      return { name, note: 'ordered and lossless, one message per send; survives reconnects' };
  }
}

/**
 * The browser's WebSocket, except that a frame sent once the socket is closing or closed is
 * dropped quietly. The SDK may still send an acknowledgement or a heartbeat in the moment between
 * a close (its own `close()`, or the server going away) and the socket's close event; the browser
 * discards such a frame anyway, but logs an error for each. Passed to the SDK through its public
 * `WebSocket` option.
 */
export class QuietWebSocket extends WebSocket {
  override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    if (this.readyState === WebSocket.OPEN) super.send(data);
  }
}

/** The WebSocket URL of the server that served this page. */
export function serverUrl(): string {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/`;
}
