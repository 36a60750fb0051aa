import type { Capabilities, ConnectionState, ParticipantInfo } from '@backchannel/protocol';

/** Another participant in a room, as this client sees it. */
export class RemoteParticipant {
  /** Server-assigned participant id (unique per connection). */
  readonly id: string;
  /** @internal Numeric handle in data frames. */
  readonly sid: number;
  readonly userId: string;
  displayName: string;
  metadata: unknown;
  /** When it joined, ms since the epoch. */
  readonly joinedAt: number;
  capabilities: Capabilities;
  /** `'reconnecting'` while its connection is lost and it may still come back (a resume); else `'connected'`. */
  connectionState: ConnectionState;

  constructor(info: ParticipantInfo) {
    this.id = info.id;
    this.sid = info.sid;
    this.userId = info.userId;
    this.displayName = info.displayName;
    this.metadata = info.metadata;
    this.joinedAt = info.joinedAt;
    this.capabilities = info.capabilities;
    this.connectionState = info.connection ?? 'connected';
  }

  /** Whether this participant supports data sessions. */
  get supportsDataSession(): boolean {
    return this.capabilities.dataSession;
  }

  /** @internal */
  _update(info: ParticipantInfo): void {
    this.displayName = info.displayName;
    this.metadata = info.metadata;
    this.capabilities = info.capabilities;
    this.connectionState = info.connection ?? 'connected';
  }
}
