import type { EventKey, EventPayload, MediaKind } from '@homelab/bus';

/**
 * Where transitions go: JetStream in the service (EventPublisher), a list in unit tests. `msgId`
 * is deterministic, so a publish retried after a crash or a timeout is stored once (the stream's
 * duplicate window).
 */
export interface EventSink {
  publish<K extends EventKey>(key: K, payload: EventPayload<K>, msgId: string): Promise<void>;
}

/** A target as the trackers name it. */
export interface TargetRef {
  name: string;
  kind: MediaKind;
}

export type Clock = () => number;
export const systemClock: Clock = () => Date.now();
