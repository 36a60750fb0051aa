/**
 * Which transport carries each delivery mode. Today every mode rides the client's one WebSocket;
 * when the SDK can carry `unreliable` sessions over a WebRTC data channel, {@link transportFor}
 * is the one place that learns to say so.
 */
import type { Client, DataMode } from '@backchannel/client';

export interface TransportLabel {
  /** Short name for the badge: `WebSocket`, `WebSocket (TLS)`. */
  name: string;
  /** What the mode means on that transport, for the badge's description. */
  note: string;
}

/** The transport the demo's `client` uses for `mode`. */
export function transportFor(_client: Client, mode: DataMode): TransportLabel {
  const name = location.protocol === 'https:' ? 'WebSocket (TLS)' : 'WebSocket';
  switch (mode) {
    case 'unreliable':
      return { name, note: 'TCP: ordered; under congestion the oldest positions are dropped, never retransmitted' };
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
