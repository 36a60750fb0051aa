/**
 * The client's WebRTC path negotiates on first use (docs/webrtc.md), checked with small fakes (a
 * link and an RTCPeerConnection that never completes): nothing is made until an `unreliable`
 * session wants the path, at most one peer connection however often it is wanted, a lost link
 * leaves an idle path idle, a resume negotiates again at once only a path that was wanted, and a
 * new participant (a restart) starts idle.
 */
import { describe, expect, it } from 'vitest';
import type { WebRtcGrant } from '@backchannel/protocol';
import { WebRtcPath, setPeerConnectionImpl, type TransportInfo } from '../../packages/client/dist/webrtc.js';
import type { Link } from '../../packages/client/dist/link.js';

const GRANT: WebRtcGrant = { iceServers: [], negotiationTimeoutMs: 60_000, datagramBytes: 1_150 };

/** A peer connection whose negotiation never ends (its offer is never answered). */
class FakePeerConnection {
  static made: FakePeerConnection[] = [];
  closed = false;
  onicecandidate = null;
  onconnectionstatechange = null;
  localDescription = { sdp: 'v=0\r\n' };
  constructor() {
    FakePeerConnection.made.push(this);
  }
  createDataChannel() {
    return { readyState: 'connecting', close() {} };
  }
  async createOffer() {
    return { type: 'offer', sdp: 'v=0\r\n' };
  }
  async setLocalDescription() {}
  close() {
    this.closed = true;
  }
}

/** A link that records requests and never answers them. */
function fakeLink() {
  const requests: string[] = [];
  const link = {
    attached: true,
    datagrams: undefined,
    requests,
    on: () => () => {},
    request: (msg: { t: string }) => {
      requests.push(msg.t);
      return new Promise(() => {});
    },
  };
  return link as unknown as Link & { requests: string[]; attached: boolean };
}

/** A started path (as after a welcome), with the changes it reported. */
function started(enabled = true) {
  FakePeerConnection.made = [];
  setPeerConnectionImpl(FakePeerConnection as unknown as typeof RTCPeerConnection);
  const changes: TransportInfo[] = [];
  const path = new WebRtcPath(enabled, (i) => changes.push(i));
  const link = fakeLink();
  path.start(link, GRANT);
  return { path, link, changes };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe('WebRTC path: negotiated on first use', () => {
  it('makes no peer connection until wanted, then one, however often it is wanted', async () => {
    const { path, link, changes } = started();
    await settle();
    expect(path.info).toEqual({ unreliable: 'websocket', reliable: 'websocket', webrtc: 'idle' });
    expect(FakePeerConnection.made.length).toBe(0);
    expect(link.requests).toEqual([]);
    expect(changes).toEqual([]);

    path.want();
    path.want();
    await settle();
    expect(path.info.webrtc).toBe('connecting');
    expect(FakePeerConnection.made.length).toBe(1);
    expect(link.requests).toEqual(['rtc.offer']);
    expect(changes.map((c) => c.webrtc)).toEqual(['connecting']);
    path.stop();
  });

  it('a lost link leaves an idle path idle, and the resume does not negotiate it', async () => {
    const { path, changes } = started();
    path.stop({ code: 'webrtc-failed', message: 'the signalling connection was lost' });
    expect(path.info.webrtc).toBe('idle');
    path.start(fakeLink(), GRANT);
    await settle();
    expect(path.info.webrtc).toBe('idle');
    expect(FakePeerConnection.made.length).toBe(0);
    expect(changes).toEqual([]);
  });

  it('a path wanted before a lost link is negotiated again at once after the resume; a new participant starts idle', async () => {
    const { path } = started();
    path.want();
    await settle();
    const [first] = FakePeerConnection.made;
    path.stop({ code: 'webrtc-failed', message: 'the signalling connection was lost' });
    expect(first!.closed).toBe(true);
    expect(path.info).toMatchObject({ webrtc: 'failed', reason: { code: 'webrtc-failed' } });

    const resumed = fakeLink();
    path.start(resumed, GRANT);
    await settle();
    expect(path.info.webrtc).toBe('connecting');
    expect(FakePeerConnection.made.length).toBe(2);
    expect(resumed.requests).toEqual(['rtc.offer']);

    // Could not resume: a new participant, whose sessions have not asked for the path yet.
    path.start(fakeLink(), GRANT, true);
    await settle();
    expect(path.info.webrtc).toBe('idle');
    expect(FakePeerConnection.made.length).toBe(2);
    expect(FakePeerConnection.made[1]!.closed).toBe(true);
  });

  it('wanted while the link is away: negotiated once a link is attached', async () => {
    const { path, link } = started();
    link.attached = false;
    path.want();
    await settle();
    expect(FakePeerConnection.made.length).toBe(0);
    path.start(fakeLink(), GRANT);
    await settle();
    expect(path.info.webrtc).toBe('connecting');
    expect(FakePeerConnection.made.length).toBe(1);
    path.stop();
  });

  it('with the option webrtc: false, wanting it changes nothing', async () => {
    const { path } = started(false);
    path.want();
    await settle();
    expect(path.info).toMatchObject({ webrtc: 'off', reason: { code: 'webrtc-unavailable' } });
    expect(FakePeerConnection.made.length).toBe(0);
  });
});
