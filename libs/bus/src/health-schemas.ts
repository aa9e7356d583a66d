import { Type, type Static, type TSchema } from '@sinclair/typebox';

/*
 * The health service's wire shapes (docs/health.md): the KV record of one target, the state-change
 * event, the probe-result event and the `health.status` snapshot, plus small pure helpers for
 * their consumers (the router skips a backend whose target is `down`).
 */

const Closed = { additionalProperties: false } as const;
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

/** `unknown`: not probed yet, or not probed at all (no address, planned, disabled). */
export const HealthStateSchema = Type.Union([Type.Literal('up'), Type.Literal('degraded'), Type.Literal('down'), Type.Literal('unknown')]);
export type HealthState = Static<typeof HealthStateSchema>;

/** One probe's verdict, before damping turns a run of them into a state. */
export const ProbeOutcomeSchema = Type.Union([Type.Literal('ok'), Type.Literal('degraded'), Type.Literal('fail')]);
export type ProbeOutcome = Static<typeof ProbeOutcomeSchema>;

/** Small facts a probe learned (a version, the models Ollama has loaded, a certificate's expiry). */
export const HealthDetailSchema = Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()]));
export type HealthDetail = Static<typeof HealthDetailSchema>;

/** Consecutive results of each class; damping decides on them (kept in KV so a restart continues). */
export const HealthStreaksSchema = Type.Object({
  fail: Type.Integer({ minimum: 0 }),
  ok: Type.Integer({ minimum: 0 }),
  /** degraded or fail in a row */
  notOk: Type.Integer({ minimum: 0 }),
  /** ok or degraded in a row */
  notFail: Type.Integer({ minimum: 0 }),
}, Closed);
export type HealthStreaks = Static<typeof HealthStreaksSchema>;

/** One target's status: the value in KV bucket `health` under `<node>.<service>`, and one entry of the snapshot. */
export const HealthTargetStatusSchema = Type.Object({
  /** `<node>.<service>`: the KV key, and the last two tokens of the event subject. */
  key: Type.String(),
  node: Type.String(),
  service: Type.String(),
  /** The service's kind from the config (`vllm`, `sonarr`, …), `host` for node reachability, `nats-service` for `$SRV` discovery. */
  kind: Type.String(),
  /** The probe that runs: `http`, `tcp`, `tls`, `ollama`, `qbittorrent`, `srv`, or `none`. */
  probe: Type.String(),
  /** What is probed, secrets stripped (`http://192.168.1.7:8000/health`, `192.168.1.1:80`); null when nothing is. */
  target: Nullable(Type.String()),
  state: HealthStateSchema,
  /** When the target entered its state (ISO 8601). */
  since: Type.String(),
  /** When the last probe finished (ISO 8601); null before the first. */
  lastCheck: Nullable(Type.String()),
  latencyMs: Nullable(Type.Number()),
  /** Why the last probe failed or was degraded; null when it was fine. Never carries secrets. */
  error: Nullable(Type.String()),
  /** False for targets listed but never probed (see `reason`). */
  probed: Type.Boolean(),
  reason: Type.Optional(Type.String()),
  streaks: HealthStreaksSchema,
  detail: Type.Optional(HealthDetailSchema),
}, Closed);
export type HealthTargetStatus = Static<typeof HealthTargetStatusSchema>;

/** `health.<node>.<service>` (stream HEALTH): one per state change, never repeated while the state holds. */
export const HealthChangedSchema = Type.Object({
  /** `<key>@<since epoch ms>:<state>`: also the JetStream msgId, so a retried publish is stored once. */
  id: Type.String(),
  key: Type.String(),
  node: Type.String(),
  service: Type.String(),
  kind: Type.String(),
  target: Nullable(Type.String()),
  state: HealthStateSchema,
  previous: HealthStateSchema,
  /** When the new state began (ISO 8601). */
  since: Type.String(),
  /** When the previous state began. */
  previousSince: Type.String(),
  latencyMs: Nullable(Type.Number()),
  error: Nullable(Type.String()),
  detail: Type.Optional(HealthDetailSchema),
}, Closed);
export type HealthChanged = Static<typeof HealthChangedSchema>;

/** `health.probe.<node>.<service>` (stream HEALTH_PROBES, kept a day): every probe's result, for metrics. */
export const HealthProbeResultSchema = Type.Object({
  key: Type.String(),
  node: Type.String(),
  service: Type.String(),
  kind: Type.String(),
  outcome: ProbeOutcomeSchema,
  /** The target's state after this result (damping applied). */
  state: HealthStateSchema,
  latencyMs: Nullable(Type.Number()),
  error: Nullable(Type.String()),
  at: Type.String(),
  detail: Type.Optional(HealthDetailSchema),
}, Closed);
export type HealthProbeResult = Static<typeof HealthProbeResultSchema>;

/** `health.status` request: empty (everything) or a filter. */
export const HealthStatusRequestSchema = Type.Union([
  Type.Null(),
  Type.Object({ node: Type.Optional(Type.String({ minLength: 1 })), state: Type.Optional(HealthStateSchema) }, Closed),
]);
export type HealthStatusRequest = Static<typeof HealthStatusRequestSchema>;

/** `health.status` reply (and the ingress's `GET /status` body). */
export const HealthSnapshotSchema = Type.Object({
  lab: Type.String(),
  generatedAt: Type.String(),
  /** When this health service process started. */
  startedAt: Type.String(),
  /** The worst state among probed targets (`unknown` when nothing was probed yet). */
  overall: HealthStateSchema,
  counts: Type.Object({ up: Type.Integer(), degraded: Type.Integer(), down: Type.Integer(), unknown: Type.Integer() }, Closed),
  targets: Type.Array(HealthTargetStatusSchema),
}, Closed);
export type HealthSnapshot = Static<typeof HealthSnapshotSchema>;

/** The KV bucket holding one HealthTargetStatus per target. */
export const HEALTH_KV_BUCKET = 'health';

/** Node and service names are config keys (`[a-z0-9-]`) or `$SRV` names: make any of them one safe subject token. */
export function healthToken(name: string): string {
  const token = name.replace(/[^A-Za-z0-9_-]/g, '_');
  return token === '' ? '_' : token;
}

/** `ai-node`, `vllm` → `ai-node.vllm` (KV key). The config's `ai-node/vllm` reference maps to the same key. */
export function healthKey(node: string, service: string): string {
  return `${healthToken(node)}.${healthToken(service)}`;
}

/** `health.ai-node.vllm`: the state-change event subject. */
export function healthEventSubject(node: string, service: string): string {
  return `health.${healthKey(node, service)}`;
}

/** `health.probe.ai-node.vllm`: the probe-result subject. */
export function healthProbeSubject(node: string, service: string): string {
  return `health.probe.${healthKey(node, service)}`;
}

/** A config service reference (`ai-node/vllm`, as in `inference.vllm.service`) → its health key. */
export function healthKeyOfRef(ref: string): string {
  const [node = '', service = ''] = ref.split('/');
  return healthKey(node, service);
}

/** Whether work may be sent to a target in this state: only `down` says no (unknown and degraded still serve). */
export function isHealthUsable(state: HealthState | undefined): boolean {
  return state !== 'down';
}

/**
 * A consumer's view of the lab's health, fed by the snapshot (`health.status` or KV) and then by
 * state-change events. Pure: the router keeps one and asks `usable('ai-node/vllm')`. Older news
 * never overwrites newer (events compare `since`), so replaying a stream is harmless.
 */
export class HealthBook {
  readonly #entries = new Map<string, { state: HealthState; since: number }>();

  applySnapshot(snapshot: Pick<HealthSnapshot, 'targets'>): void {
    for (const t of snapshot.targets) this.#set(t.key, t.state, t.since);
  }

  applyEvent(event: Pick<HealthChanged, 'key' | 'state' | 'since'>): void {
    this.#set(event.key, event.state, event.since);
  }

  /** State of `ai-node/vllm` or `ai-node.vllm`; undefined when never heard of. */
  state(refOrKey: string): HealthState | undefined {
    return this.#entries.get(refOrKey.includes('/') ? healthKeyOfRef(refOrKey) : refOrKey)?.state;
  }

  usable(refOrKey: string): boolean {
    return isHealthUsable(this.state(refOrKey));
  }

  #set(key: string, state: HealthState, since: string): void {
    const at = Date.parse(since) || 0;
    const current = this.#entries.get(key);
    if (current && current.since > at) return;
    this.#entries.set(key, { state, since: at });
  }
}
