import type {
  HealthChanged, HealthProbeResult, HealthSnapshot, HealthState, HealthStatusRequest, HealthTargetStatus,
} from '@homelab/bus';
import type { Logger } from '@homelab/logging';
import type { Target } from './inventory.ts';
import { runProbe, type ProbeMemory, type ProbeResult } from './probes.ts';
import { ZERO_STREAKS, isPending, step } from './state.ts';

/*
 * Runs every target's probe on its own timer (all concurrently, each under its own deadline, so
 * a dead address never delays another), applies damping, and reports through callbacks that
 * main.ts wires to NATS: state changes (events + alerts), every result (metrics), every record
 * (KV). Starting from records loaded from KV, a restart continues where it stopped: no
 * transition is reported unless the state really changes.
 */

export interface MonitorOptions {
  targets: readonly Target[];
  log: Logger;
  lab: string;
  maxBodyBytes: number;
  certExpiryWarnDays: number;
  /** Records from the KV bucket: the state before this process started. */
  initial?: readonly HealthTargetStatus[];
  /** Keys of records that are kept and fed from outside (discovery), even without a target yet. */
  keepInitial?: (record: HealthTargetStatus) => Target | undefined;
  onChange?: (event: HealthChanged, record: HealthTargetStatus) => void;
  onResult?: (result: HealthProbeResult, record: HealthTargetStatus) => void;
  onRecord?: (record: HealthTargetStatus) => void;
  /** A record dropped: its target is no longer in the config, or was forgotten. */
  onForget?: (key: string) => void;
  /** Spreads the first probes over this many ms (0: all at once). */
  startJitterMs?: number;
  /**
   * The gateway's own services (kind `gateway`: the ingress) start alongside this one: while they
   * have no state yet, a failed probe in the first `startupGraceMs` leaves them `unknown` (retried at
   * `retryIntervalMs`) instead of calling them down before they had a chance to listen.
   */
  startupGraceMs?: number;
  now?: () => number;
}

export class HealthMonitor {
  readonly #o: MonitorOptions;
  readonly #targets = new Map<string, Target>();
  readonly #records = new Map<string, HealthTargetStatus>();
  readonly #memory = new Map<string, ProbeMemory>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #inflight = new Set<Promise<void>>();
  readonly #startedAt: string;
  readonly #startedAtMs: number;
  readonly #now: () => number;
  #running = false;

  constructor(options: MonitorOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#startedAtMs = this.#now();
    this.#startedAt = this.#iso();
    const loaded = new Map((options.initial ?? []).map((r) => [r.key, r]));
    for (const target of options.targets) this.#addRecord(target, loaded.get(target.key));
    for (const record of loaded.values()) {
      if (this.#targets.has(record.key)) continue;
      const target = options.keepInitial?.(record);
      if (target) this.#addRecord(target, record);
      else options.onForget?.(record.key);
    }
  }

  get startedAt(): string {
    return this.#startedAt;
  }

  /** Starts probing every probed target. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    for (const target of this.#targets.values()) {
      if (target.spec) this.#schedule(target.key, this.#o.startJitterMs ? Math.floor(Math.random() * this.#o.startJitterMs) : 0);
    }
  }

  /** Stops the timers and waits for probes in flight (each is bounded by its timeout). */
  async stop(): Promise<void> {
    this.#running = false;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    await Promise.allSettled([...this.#inflight]);
  }

  has(key: string): boolean {
    return this.#targets.has(key);
  }

  target(key: string): Target | undefined {
    return this.#targets.get(key);
  }

  record(key: string): HealthTargetStatus | undefined {
    return this.#records.get(key);
  }

  targets(): Target[] {
    return [...this.#targets.values()];
  }

  /** Adds a target at run time (a service discovery found); it starts `unknown`. */
  addTarget(target: Target): void {
    if (this.#targets.has(target.key)) return;
    this.#addRecord(target, undefined);
    if (this.#running && target.spec) this.#schedule(target.key, 0);
  }

  /** Drops a target and its record (no event: it is not a state change, it is no longer watched). */
  removeTarget(key: string): void {
    clearTimeout(this.#timers.get(key));
    this.#timers.delete(key);
    this.#targets.delete(key);
    this.#records.delete(key);
    this.#memory.delete(key);
    this.#o.onForget?.(key);
  }

  /** Feeds a result measured elsewhere (discovery) into a target's state machine. */
  report(key: string, result: ProbeResult): void {
    const target = this.#targets.get(key);
    if (target) this.#apply(target, result);
  }

  /** Probes one target now (tests, and a manual refresh). */
  async probe(key: string): Promise<HealthTargetStatus | undefined> {
    const target = this.#targets.get(key);
    if (!target?.spec) return this.#records.get(key);
    const result = await this.#runOne(target);
    this.#apply(target, result);
    return this.#records.get(key);
  }

  snapshot(filter?: HealthStatusRequest): HealthSnapshot {
    let targets = [...this.#records.values()];
    if (filter?.node) targets = targets.filter((t) => t.node === filter.node);
    if (filter?.state) targets = targets.filter((t) => t.state === filter.state);
    const counts = { up: 0, degraded: 0, down: 0, unknown: 0 };
    for (const t of targets) counts[t.state]++;
    const overall: HealthState = counts.down ? 'down' : counts.degraded ? 'degraded' : counts.up ? 'up' : 'unknown';
    return { lab: this.#o.lab, generatedAt: this.#iso(), startedAt: this.#startedAt, overall, counts, targets: targets.map((t) => structuredClone(t)) };
  }

  #iso(): string {
    return new Date(this.#now()).toISOString();
  }

  #addRecord(target: Target, loaded: HealthTargetStatus | undefined): void {
    this.#targets.set(target.key, target);
    const probed = target.spec !== null || target.probe === 'srv';
    const fixed = {
      key: target.key, node: target.node, service: target.service, kind: target.kind, probe: target.probe, target: target.display, probed,
      ...(target.reason && { reason: target.reason }),
    };
    if (loaded && probed) {
      // Continue from the stored state: same state, same since, same streaks.
      const { reason: _reason, ...rest } = loaded;
      this.#records.set(target.key, { ...rest, ...fixed });
      return;
    }
    const record: HealthTargetStatus = {
      ...fixed, state: 'unknown', since: this.#iso(), lastCheck: null, latencyMs: null, error: null, streaks: { ...ZERO_STREAKS },
    };
    this.#records.set(target.key, record);
    if (loaded && loaded.state !== 'unknown') {
      // Was probed before, is not any more (address removed, disabled): that is a change.
      this.#emitChange(target, record, loaded.state, loaded.since);
    }
    this.#o.onRecord?.(record);
  }

  #schedule(key: string, delayMs: number): void {
    if (!this.#running) return;
    clearTimeout(this.#timers.get(key));
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      const target = this.#targets.get(key);
      if (!target?.spec || !this.#running) return;
      const run = this.#runOne(target).then((result) => {
        if (!this.#targets.has(key)) return;
        this.#apply(target, result);
        const record = this.#records.get(key);
        const soon = record && (isPending(record) || this.#waitingForStartup(target, record));
        this.#schedule(key, soon ? target.retryIntervalMs : target.intervalMs);
      });
      this.#inflight.add(run);
      void run.finally(() => this.#inflight.delete(run));
    }, delayMs);
    this.#timers.set(key, timer);
  }

  async #runOne(target: Target): Promise<ProbeResult> {
    if (!target.spec) return { outcome: 'fail', latencyMs: null, error: 'not probed' };
    let memory = this.#memory.get(target.key);
    if (!memory) { memory = {}; this.#memory.set(target.key, memory); }
    try {
      return await runProbe(target.spec, {
        timeoutMs: target.timeoutMs, degradedLatencyMs: target.degradedLatencyMs, maxBodyBytes: this.#o.maxBodyBytes,
        certExpiryWarnDays: this.#o.certExpiryWarnDays, secrets: target.secrets, memory,
      });
    } catch (err) {
      // runProbe does not throw; this is the last line of defence for the service staying up.
      this.#o.log.error({ key: target.key, err: (err as Error).message }, 'probe crashed');
      return { outcome: 'fail', latencyMs: null, error: 'probe failed internally' };
    }
  }

  /** A gateway service with no state yet, within the start-up grace: it may not be listening yet. */
  #waitingForStartup(target: Target, record: HealthTargetStatus): boolean {
    return target.kind === 'gateway' && record.state === 'unknown' && this.#now() - this.#startedAtMs < (this.#o.startupGraceMs ?? 0);
  }

  #apply(target: Target, result: ProbeResult): void {
    const previous = this.#records.get(target.key);
    if (!previous) return;
    const at = this.#iso();
    if (result.outcome === 'fail' && this.#waitingForStartup(target, previous)) {
      const record: HealthTargetStatus = { ...previous, lastCheck: at, latencyMs: null, error: `not answering yet (${result.error ?? 'no answer'}); starting up?` };
      this.#records.set(target.key, record);
      this.#safely('onRecord', () => this.#o.onRecord?.(record));
      return;
    }
    const { core, changed } = step(previous, result.outcome, target.damping, at);
    const detail = result.detail ?? previous.detail;
    const record: HealthTargetStatus = {
      ...previous, state: core.state, since: core.since, streaks: core.streaks, lastCheck: at, latencyMs: result.latencyMs,
      error: result.error, ...(detail && { detail }),
    };
    this.#records.set(target.key, record);
    if (changed) this.#emitChange(target, record, changed.from, changed.fromSince);
    this.#safely('onResult', () => this.#o.onResult?.({
      key: record.key, node: record.node, service: record.service, kind: record.kind, outcome: result.outcome, state: record.state,
      latencyMs: result.latencyMs, error: result.error, at, ...(result.detail && { detail: result.detail }),
    }, record));
    this.#safely('onRecord', () => this.#o.onRecord?.(record));
  }

  #emitChange(target: Target, record: HealthTargetStatus, from: HealthState, fromSince: string): void {
    const event: HealthChanged = {
      id: `${record.key}@${Date.parse(record.since)}:${record.state}`,
      key: record.key, node: record.node, service: record.service, kind: record.kind, target: record.target,
      state: record.state, previous: from, since: record.since, previousSince: fromSince,
      latencyMs: record.latencyMs, error: record.error, ...(record.detail && { detail: record.detail }),
    };
    const level = record.state === 'down' ? 'warn' : 'info';
    this.#o.log[level]({ key: target.key, from, to: record.state, error: record.error ?? undefined, latencyMs: record.latencyMs ?? undefined }, `${target.key}: ${from} → ${record.state}`);
    this.#safely('onChange', () => this.#o.onChange?.(event, record));
  }

  #safely(what: string, f: () => void): void {
    try {
      f();
    } catch (err) {
      this.#o.log.error({ err: (err as Error).message }, `health ${what} callback failed`);
    }
  }
}
