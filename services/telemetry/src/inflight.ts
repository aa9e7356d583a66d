import type { NatsConnection } from '@homelab/bus';
import { isProvider } from '@homelab/config';
import type { Logger } from '@homelab/logging';


interface StatsReply { name?: string; id?: string; data?: { faults?: unknown }; endpoints?: { name?: string; data?: { in_flight?: unknown } }[] }

/**
 * Requests in flight per backend, summed over every worker's `$SRV.STATS` reply: each worker's
 * `<provider>-generate` endpoint reports `data.in_flight`. Events only say when a request ended, so
 * this is the one metric read from the services themselves.
 */
export function inFlightByProvider(replies: readonly StatsReply[]): Map<string, number> {
  const totals = new Map<string, number>();
  for (const reply of replies) {
    for (const endpoint of reply.endpoints ?? []) {
      const provider = endpoint.name?.endsWith('-generate') ? endpoint.name.slice(0, -'-generate'.length) : undefined;
      if (!isProvider(provider)) continue;
      const n = typeof endpoint.data?.in_flight === 'number' ? endpoint.data.in_flight : 0;
      totals.set(provider, (totals.get(provider) ?? 0) + n);
    }
  }
  return totals;
}

/**
 * Faults that escaped a request (a bug the process survived) per service, summed over its replicas:
 * each process counts them since it started (`data.faults` of its `$SRV.STATS` reply).
 */
export function faultsByService(replies: readonly StatsReply[]): Map<string, number> {
  const totals = new Map<string, number>();
  for (const reply of replies) {
    if (!reply.name) continue;
    const n = typeof reply.data?.faults === 'number' ? reply.data.faults : 0;
    totals.set(reply.name, (totals.get(reply.name) ?? 0) + n);
  }
  return totals;
}

/** Asks every service for its stats every `intervalMs` and hands the in-flight and fault totals on. */
export function pollInFlight(nc: NatsConnection, record: (byProvider: Map<string, number>, faults: Map<string, number>) => void, log: Logger, intervalMs = 5000): { stop(): void } {
  const round = async (): Promise<void> => {
    const replies: StatsReply[] = [];
    for await (const m of await nc.requestMany('$SRV.STATS', undefined, { strategy: 'timer', maxWait: 500 })) {
      if (m.data.length) { try { replies.push(m.json<StatsReply>()); } catch { /* not a stats reply */ } }
    }
    record(inFlightByProvider(replies), faultsByService(replies));
  };
  const timer = setInterval(() => void round().catch((err: unknown) => log.warn({ err: (err as Error).message }, 'in-flight poll failed')), intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
