/**
 * A room: the set of participants that share calls' or conferences' events and data sessions.
 * A 1:1 call is a room of two (`kind: 'call'`); a conference is a room of many.
 *
 * Presence (who is in the room) is told in batches: a change leaves at once when the room's
 * presence budget allows it, and the changes made while the room waits for its budget leave
 * together, in one `room.presence` event encoded once and sent to every member that follows
 * presence. Changes are numbered per room, so a member's snapshot (its join reply) and the batches
 * it then receives never overlap. See {@link Room.flushPresence}.
 */
import {
  encodeControlFrame,
  type ParticipantInfo,
  type ParticipantsPage,
  type PresenceChange,
  type PresenceMode,
  type RoomInfo,
  type SessionInfo,
} from '@backchannel/protocol';
import type { Peer } from './peer.js';

/** A peer's membership in one room. */
export interface Member {
  peer: Peer;
  displayName: string;
  metadata: unknown;
  joinedAt: number;
  /** Hidden members are not listed to others and their joins/leaves are not announced. */
  hidden: boolean;
  /** What it hears of the others: the member list and its changes (`'full'`), or nothing (`'none'`). */
  presence: PresenceMode;
  /** Its place in the room's join order (increasing, never reused in the room). */
  order: number;
  /** Stream ids this member refused with `unsupportDataSession` (created on first use). */
  unsupported?: Set<number>;
}

/** Hook through which the data-session layer reports the sessions a member would receive. */
export type OpenSessionsFor = (room: Room, member: Member) => SessionInfo[];

/** Default and largest page of {@link Room.page}. */
export const DEFAULT_PAGE = 100;

export class Room {
  readonly members = new Map<string, Member>();
  /** Members by their numeric handle (recipients of addressed frames). */
  readonly bySid = new Map<number, Member>();
  /** Members that follow presence (`presence: 'full'`). */
  readonly watchers = new Set<Member>();
  readonly createdAt = Date.now();
  /** Hidden members (counted apart from visible ones for the room's size limit). */
  hiddenCount = 0;
  ended = false;
  /** Timer that ends an empty conference after the grace period. */
  emptyTimer: ReturnType<typeof setTimeout> | undefined;
  /** When presence was last sent (`performance.now()`), and the timer of the next batch, if waiting. */
  lastPresenceFlush = -Infinity;
  presenceTimer: ReturnType<typeof setTimeout> | undefined;
  /** Sequence number of the last presence change (0: none yet). */
  presenceSeq = 0;
  /** Changes not yet sent, oldest first; the first has sequence number `presenceSeq - length + 1`. */
  #pending: PresenceChange[] = [];
  /** Index in `#pending` of a participant's last change, to fold updates into it. */
  #pendingAt = new Map<string, number>();
  /** Members in join order, with holes (`undefined`) where members left; `#orderNums` alongside. */
  #order: (Member | undefined)[] = [];
  #orderNums: number[] = [];
  #holes = 0;
  #nextOrder = 1;
  /** `presenceSeq` when the last snapshot was taken: changes up to it may no longer be edited. */
  #snapshotSeq = 0;

  constructor(
    /** Server-wide room number, used in data frames. */
    readonly num: number,
    readonly kind: 'conference' | 'call',
    /** Conference name, or call id. */
    readonly name: string,
    /** Called when the room first has unsent presence changes (the hub sends them, now or after its window). */
    private readonly onPresencePending: (room: Room) => void = () => undefined,
  ) {}

  get size(): number {
    return this.members.size;
  }

  /** Visible members. */
  get visibleCount(): number {
    return this.members.size - this.hiddenCount;
  }

  /** The member for `participantId`, if present. */
  member(participantId: string): Member | undefined {
    return this.members.get(participantId);
  }

  /** Public description of a member. */
  static info(m: Member): ParticipantInfo {
    const p = m.peer;
    const info: ParticipantInfo = { id: p.id, sid: p.sid, userId: p.userId, displayName: m.displayName, metadata: m.metadata ?? null, joinedAt: m.joinedAt, capabilities: p.capabilities };
    if (p.connection === 'reconnecting') info.connection = 'reconnecting'; // absent means connected
    return info;
  }

  /** Adds `member` (built by the caller) and announces it unless hidden. */
  add(member: Member): void {
    member.order = this.#nextOrder++;
    this.members.set(member.peer.id, member);
    this.bySid.set(member.peer.sid, member);
    this.#order.push(member);
    this.#orderNums.push(member.order);
    if (member.presence === 'full') this.watchers.add(member);
    if (member.hidden) this.hiddenCount++;
    else this.#change(member.peer.id, { k: 'j', participant: Room.info(member) });
  }

  /** Removes `member`; its leave is announced unless hidden or `announce` is false. */
  remove(member: Member, change: PresenceChange & { k: 'l' }, announce: boolean): void {
    this.members.delete(member.peer.id);
    this.bySid.delete(member.peer.sid);
    this.watchers.delete(member);
    const i = this.#indexOf(member.order);
    if (i >= 0 && this.#order[i] === member) {
      this.#order[i] = undefined;
      if (++this.#holes > 64 && this.#holes * 2 > this.#order.length) this.#compact();
    }
    if (member.hidden) this.hiddenCount--;
    else if (announce) this.#change(member.peer.id, change);
  }

  /** Announces a visible member's new metadata, display name or connection state. */
  updated(member: Member): void {
    if (!member.hidden) this.#change(member.peer.id, { k: 'u', participant: Room.info(member) });
  }

  /** What `member` learns about the room when it enters: everyone else who is not hidden. */
  infoFor(member: Member, openSessions: OpenSessionsFor): RoomInfo {
    const participants: ParticipantInfo[] = [];
    if (member.presence === 'full') for (const m of this.members.values()) if (m !== member && !m.hidden) participants.push(Room.info(m));
    this.#snapshotSeq = this.presenceSeq;
    return {
      room: this.num,
      kind: this.kind,
      name: this.name,
      self: Room.info(member),
      participants,
      participantCount: this.visibleCount - (member.hidden ? 0 : 1),
      presenceSeq: this.presenceSeq,
      sessions: openSessions(this, member),
    };
  }

  /**
   * One page of the visible members other than `member`, in join order, after the cursor `after`
   * (a join-order number from an earlier page's `next`).
   */
  page(member: Member, after: number, limit: number): ParticipantsPage {
    const participants: ParticipantInfo[] = [];
    let last = 0;
    let more = false;
    for (let i = this.#firstAfter(after); i < this.#order.length; i++) {
      const m = this.#order[i];
      if (!m || m === member || m.hidden) continue;
      if (participants.length === limit) {
        more = true;
        break;
      }
      participants.push(Room.info(m));
      last = m.order;
    }
    const page: ParticipantsPage = { participants, total: this.visibleCount - (member.hidden ? 0 : 1) };
    if (more) page.next = String(last);
    return page;
  }

  /** Whether presence changes wait to be sent. */
  get presencePending(): boolean {
    return this.#pending.length > 0;
  }

  /**
   * Sends the changes made since the last flush to every member that follows presence, as one
   * `room.presence` event encoded once for the room. Runs when the room's budget allows (see the
   * hub), and before anything that could reveal a participant not yet announced (a data session it
   * opens).
   */
  flushPresence(): void {
    const changes = this.#pending;
    if (changes.length === 0) return;
    this.#pending = [];
    this.#pendingAt.clear();
    if (this.presenceTimer) clearTimeout(this.presenceTimer);
    this.presenceTimer = undefined;
    this.lastPresenceFlush = performance.now();
    if (this.ended || this.watchers.size === 0) return;
    const seq = this.presenceSeq - changes.length + 1;
    const frame = encodeControlFrame(JSON.stringify({ t: 'room.presence', room: this.num, seq, changes }));
    for (const m of this.watchers) m.peer.link.sendControlFrame(frame);
  }

  /** Forgets unsent changes (the room ended: its members are told that instead). */
  dropPresence(): void {
    this.#pending = [];
    this.#pendingAt.clear();
    if (this.presenceTimer) clearTimeout(this.presenceTimer);
    this.presenceTimer = undefined;
  }

  #change(participantId: string, change: PresenceChange): void {
    // An update folds into the participant's unsent join or update (one record, its latest
    // state), unless a snapshot taken since then already counts that change as seen.
    if (change.k === 'u') {
      const at = this.#pendingAt.get(participantId);
      const prev = at === undefined ? undefined : this.#pending[at];
      const prevSeq = this.presenceSeq - this.#pending.length + 1 + (at ?? 0);
      if (prev && prev.k !== 'l' && prevSeq > this.#snapshotSeq) {
        prev.participant = change.participant;
        return;
      }
    }
    const first = this.#pending.length === 0;
    this.#pendingAt.set(participantId, this.#pending.length);
    this.#pending.push(change);
    this.presenceSeq++;
    if (first) this.onPresencePending(this);
  }

  /** Index in `#order` of join-order number `n`, or -1. */
  #indexOf(n: number): number {
    const i = this.#firstAfter(n - 1);
    return i < this.#orderNums.length && this.#orderNums[i] === n ? i : -1;
  }

  /** First index in `#order` whose join-order number is greater than `n`. */
  #firstAfter(n: number): number {
    let lo = 0;
    let hi = this.#orderNums.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#orderNums[mid]! <= n) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #compact(): void {
    const order: Member[] = [];
    for (const m of this.#order) if (m) order.push(m);
    this.#order = order;
    this.#orderNums = order.map((m) => m.order);
    this.#holes = 0;
  }
}
