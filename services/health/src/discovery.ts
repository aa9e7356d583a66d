import type { NatsConnection } from '@nats-io/transport-node';
import { healthKey } from '@homelab/bus';
import type { HealthConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import { discoveryTarget } from './inventory.ts';
import type { HealthMonitor } from './monitor.ts';

/*
 * The gateway's own services, found the way NATS tools find them: `$SRV.PING`, replies collected
 * for `discovery.waitMs`. A service seen once becomes a target `<discovery.node>.<name>`
 * (`gateway.router`); a round without its answer is a failed probe, so after
 * `missedRoundsBeforeDown` rounds it is down like any other target. Several copies of a service
 * count as one target (up while any answers).
 */

export interface SrvReply {
  name: string;
  id: string;
  version?: string;
  /** Time from the PING to this reply. */
  rttMs: number;
}

/** One `$SRV.PING` round; null when the round itself failed (connection down), which must not count as silence. */
export async function pingServices(nc: NatsConnection, waitMs: number): Promise<SrvReply[] | null> {
  if (nc.isClosed()) return null;
  const started = performance.now();
  const replies: SrvReply[] = [];
  try {
    const iter = await nc.requestMany('$SRV.PING', undefined, { strategy: 'timer', maxWait: waitMs });
    for await (const msg of iter) {
      if (msg.data.length === 0) continue; // the server's no-responders status
      try {
        const body = JSON.parse(msg.string()) as { name?: unknown; id?: unknown; version?: unknown };
        if (typeof body.name !== 'string' || !body.name) continue;
        replies.push({
          name: body.name, id: typeof body.id === 'string' ? body.id : '', rttMs: Math.round((performance.now() - started) * 10) / 10,
          ...(typeof body.version === 'string' && { version: body.version }),
        });
      } catch {
        // not a micro-service reply
      }
    }
  } catch {
    return null;
  }
  return replies;
}

export interface DiscoveryOptions {
  nc: NatsConnection;
  monitor: HealthMonitor;
  health: HealthConfig;
  log: Logger;
  /** This service's own `$SRV` name: a round without its own answer is not trusted. */
  selfName: string;
  now?: () => number;
}

export class ServiceDiscovery {
  readonly #o: DiscoveryOptions;
  readonly #lastSeen = new Map<string, number>();
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #round: Promise<void> | undefined;

  constructor(options: DiscoveryOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    // Services known from before a restart: their last sighting is their last good check.
    for (const t of options.monitor.targets()) {
      if (t.probe !== 'srv') continue;
      const r = options.monitor.record(t.key);
      const seen = r?.state === 'up' || r?.state === 'degraded' ? r.lastCheck : r?.since;
      this.#lastSeen.set(t.key, seen ? Date.parse(seen) : this.#now());
    }
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    const loop = (): void => {
      if (!this.#running) return;
      this.#round = this.tick().catch((err: unknown) => { this.#o.log.warn({ err: (err as Error).message }, 'discovery round failed'); });
      void this.#round.finally(() => { if (this.#running) this.#timer = setTimeout(loop, this.#o.health.discovery.intervalMs); });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    await this.#round;
  }

  /** Pings and applies the answers. */
  async tick(): Promise<void> {
    const replies = await pingServices(this.#o.nc, this.#o.health.discovery.waitMs);
    if (!replies) return;
    if (!replies.some((r) => r.name === this.#o.selfName)) {
      this.#o.log.debug('discovery round without our own answer; not trusted');
      return;
    }
    this.apply(replies);
  }

  /** Applies one round's answers to the monitor (pure with respect to NATS: tests call it directly). */
  apply(replies: readonly SrvReply[]): void {
    const { monitor, health } = this.#o;
    const byName = new Map<string, SrvReply[]>();
    for (const r of replies) byName.set(r.name, [...(byName.get(r.name) ?? []), r]);
    const now = this.#now();
    for (const [name, instances] of byName) {
      const key = healthKey(health.discovery.node, name);
      if (!monitor.has(key)) monitor.addTarget(discoveryTarget(name, health));
      this.#lastSeen.set(key, now);
      const versions = [...new Set(instances.map((i) => i.version).filter(Boolean))].join(',');
      monitor.report(key, {
        outcome: 'ok', latencyMs: Math.min(...instances.map((i) => i.rttMs)), error: null,
        detail: { instances: instances.length, ...(versions && { version: versions }) },
      });
    }
    for (const target of monitor.targets()) {
      if (target.probe !== 'srv' || byName.has(target.service)) continue;
      const lastSeen = this.#lastSeen.get(target.key) ?? now;
      if (monitor.record(target.key)?.state === 'down' && now - lastSeen > health.discovery.forgetAfterMs) {
        this.#o.log.info({ key: target.key }, 'forgetting a service silent for too long');
        monitor.removeTarget(target.key);
        this.#lastSeen.delete(target.key);
        continue;
      }
      monitor.report(target.key, { outcome: 'fail', latencyMs: null, error: 'no answer to $SRV.PING' });
    }
  }
}
