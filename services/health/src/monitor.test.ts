import { Writable } from 'node:stream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterEach, describe, expect, it } from 'vitest';
import type { HealthChanged, HealthProbeResult, HealthTargetStatus } from '@homelab/bus';
import { parseConfig } from '@homelab/config';
import { createLogger } from '@homelab/logging';
import { ServiceDiscovery } from './discovery.ts';
import { buildInventory, discoveryTarget } from './inventory.ts';
import { HealthMonitor } from './monitor.ts';
import { closedPort, sleep, startHttpServer, waitFor, type LocalServer } from './testkit.ts';

const quiet = createLogger({ service: 'health', destination: new Writable({ write: (_c, _e, cb) => cb() }) });

const open: Array<{ close(): Promise<void> }> = [];
const monitors: HealthMonitor[] = [];
afterEach(async () => {
  await Promise.all(monitors.splice(0).map((m) => m.stop()));
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function server(handler: Parameters<typeof startHttpServer>[0], port?: number): Promise<LocalServer> {
  const s = await startHttpServer(handler, port ? { port } : {});
  open.push(s);
  return s;
}

function labConfig(services: string, discovery = '{ missedRoundsBeforeDown: 2 }') {
  return parseConfig(`
lab: { name: test-lab }
nodes:
  box:
    address: 127.0.0.1
    services:
${services}
health:
  intervalMs: 60
  retryIntervalMs: 30
  timeoutMs: 500
  failuresBeforeDown: 2
  successesBeforeUp: 2
  discovery: ${discovery}
`, 'test.yaml', {});
}

function monitorOf(config: ReturnType<typeof labConfig>, initial?: HealthTargetStatus[]) {
  const events: HealthChanged[] = [];
  const results: HealthProbeResult[] = [];
  const forgotten: string[] = [];
  const records = new Map<string, HealthTargetStatus>();
  const monitor = new HealthMonitor({
    targets: buildInventory(config), lab: config.lab.name, log: quiet, maxBodyBytes: 65536, certExpiryWarnDays: 14,
    ...(initial && { initial }),
    keepInitial: (r) => (r.node === config.health.discovery.node ? discoveryTarget(r.service, config.health) : undefined),
    onChange: (e) => events.push(e), onResult: (r) => results.push(r), onRecord: (r) => records.set(r.key, r), onForget: (k) => forgotten.push(k),
  });
  monitors.push(monitor);
  return { monitor, events, results, records, forgotten };
}

describe('HealthMonitor', () => {
  it('probes every target, reports state changes with damping, and serves the snapshot', async () => {
    const web = await server((_q, res) => res.end('ok'));
    let healthy = true;
    const jellyfin = await server((_q, res) => { res.statusCode = healthy ? 200 : 503; res.end(healthy ? 'Healthy' : 'Unhealthy'); });
    const config = labConfig(`      web: { kind: http, port: ${web.port} }
      jellyfin: { kind: jellyfin, port: ${jellyfin.port} }
      gone: { kind: tcp, port: ${await closedPort()} }
      later: { kind: vllm, port: 8000, planned: true }`);
    const { monitor, events, results, records } = monitorOf(config);
    monitor.start();
    await waitFor(() => events.length >= 3, 3000, 'first states');
    expect(events.map((e) => `${e.key}:${e.previous}>${e.state}`).sort()).toEqual(['box.gone:unknown>down', 'box.jellyfin:unknown>up', 'box.web:unknown>up']);
    const down = events.find((e) => e.key === 'box.gone')!;
    expect(down).toMatchObject({ node: 'box', service: 'gone', kind: 'tcp', target: `127.0.0.1:${down.target!.split(':')[1]}`, error: 'connection refused', latencyMs: null });
    expect(down.id).toBe(`box.gone@${Date.parse(down.since)}:down`);

    healthy = false;
    await waitFor(() => events.some((e) => e.key === 'box.jellyfin' && e.state === 'down'), 3000, 'jellyfin down');
    const jfResults = results.filter((r) => r.key === 'box.jellyfin');
    const firstFail = jfResults.findIndex((r) => r.outcome === 'fail');
    // Damping: the first failure leaves it up; the second makes it down.
    expect(jfResults[firstFail]!.state).toBe('up');
    expect(jfResults[firstFail + 1]).toMatchObject({ outcome: 'fail', state: 'down', error: 'HTTP 503: Unhealthy' });
    healthy = true;
    await waitFor(() => events.some((e) => e.key === 'box.jellyfin' && e.previous === 'down' && e.state === 'up'), 3000, 'jellyfin up');

    const snap = monitor.snapshot();
    expect(snap).toMatchObject({ lab: 'test-lab', overall: 'down', counts: { up: 2, down: 1, unknown: 1, degraded: 0 } });
    expect(snap.targets.map((t) => t.key)).toEqual(['box.web', 'box.jellyfin', 'box.gone', 'box.later']);
    expect(snap.targets.find((t) => t.key === 'box.later')).toMatchObject({ state: 'unknown', probed: false, reason: 'planned', lastCheck: null });
    expect(snap.targets.find((t) => t.key === 'box.web')).toMatchObject({ state: 'up', probed: true, probe: 'http', error: null });
    expect(monitor.snapshot({ state: 'down' }).targets.map((t) => t.key)).toEqual(['box.gone']);
    expect(monitor.snapshot({ node: 'nope' }).overall).toBe('unknown');
    expect(records.get('box.web')?.lastCheck).toBeTruthy();
  });

  it('the gateway is not called down before it had its start-up grace to listen; other targets are', async () => {
    const port = await closedPort();
    const gone = await closedPort();
    const config = labConfig(`      gateway: { kind: gateway, port: ${port} }
      other: { kind: http, port: ${gone} }`);
    const events: HealthChanged[] = [];
    const results: HealthProbeResult[] = [];
    const monitor = new HealthMonitor({
      targets: buildInventory(config), lab: 'test-lab', log: quiet, maxBodyBytes: 65536, certExpiryWarnDays: 14, startupGraceMs: 60_000,
      onChange: (e) => events.push(e), onResult: (r) => results.push(r),
    });
    monitors.push(monitor);
    monitor.start();
    await waitFor(() => events.some((e) => e.key === 'box.other' && e.state === 'down'), 3000, 'the other target down');
    await sleep(300); // several probes of the gateway at retryIntervalMs, all refused
    expect(events.filter((e) => e.key === 'box.gateway')).toEqual([]);
    expect(monitor.record('box.gateway')).toMatchObject({ state: 'unknown', error: expect.stringMatching(/^not answering yet \(connection refused\)/) });
    // The ingress starts listening: up, from unknown, as its first real state.
    await server((_q, res) => res.end('ok'), port);
    await waitFor(() => events.some((e) => e.key === 'box.gateway'), 3000, 'the gateway up');
    expect(events.filter((e) => e.key === 'box.gateway').map((e) => `${e.previous}>${e.state}`)).toEqual(['unknown>up']);
  });

  it('past the grace, a gateway that does not listen is down', async () => {
    const config = labConfig(`      gateway: { kind: gateway, port: ${await closedPort()} }`);
    const events: HealthChanged[] = [];
    const monitor = new HealthMonitor({
      targets: buildInventory(config), lab: 'test-lab', log: quiet, maxBodyBytes: 65536, certExpiryWarnDays: 14, startupGraceMs: 200,
      onChange: (e) => events.push(e),
    });
    monitors.push(monitor);
    monitor.start();
    await waitFor(() => events.length > 0, 3000, 'the gateway down');
    expect(events.map((e) => `${e.previous}>${e.state}`)).toEqual(['unknown>down']);
  });

  it('a flapping target emits no events while it flaps', async () => {
    let n = 0;
    const flappy = await server((_q, res) => { res.statusCode = n++ % 2 === 0 ? 200 : 500; res.end(); });
    const config = labConfig(`      flappy: { kind: vllm, port: ${flappy.port} }`);
    const { monitor, events, results } = monitorOf(config);
    monitor.start();
    await waitFor(() => results.length >= 12, 5000, 'a dozen probes');
    expect(results.some((r) => r.outcome === 'fail')).toBe(true);
    expect(events.map((e) => `${e.previous}>${e.state}`)).toEqual(['unknown>up']);
  });

  it('continues from stored records after a restart: no spurious transitions', async () => {
    const web = await server((_q, res) => res.end('ok'));
    const config = labConfig(`      web: { kind: http, port: ${web.port} }
      gone: { kind: tcp, port: ${await closedPort()} }`);
    const first = monitorOf(config);
    first.monitor.start();
    await waitFor(() => first.events.length >= 2, 3000, 'first states');
    await sleep(150);
    await first.monitor.stop();
    const stored = [...first.records.values()];
    // Plus a record of a target no longer configured, and of a discovered service.
    stored.push({ ...stored[0]!, key: 'old.thing', node: 'old', service: 'thing' });
    stored.push({ ...stored[0]!, key: 'gateway.router', node: 'gateway', service: 'router', kind: 'nats-service', probe: 'srv', target: '$SRV.PING.router' });

    const second = monitorOf(config, stored);
    second.monitor.start();
    await waitFor(() => second.results.length >= 6, 3000, 'probes after restart');
    expect(second.events).toEqual([]);
    for (const key of ['box.web', 'box.gone']) {
      expect(second.monitor.record(key)).toMatchObject({ state: first.records.get(key)!.state, since: first.records.get(key)!.since });
    }
    expect(second.forgotten).toEqual(['old.thing']);
    expect(second.monitor.record('gateway.router')).toMatchObject({ state: 'up', probe: 'srv' });
  });

  it('a target that is no longer probed becomes unknown, with an event', () => {
    const config = labConfig('      web: { kind: http, port: 8080, planned: true }');
    const stored: HealthTargetStatus = {
      key: 'box.web', node: 'box', service: 'web', kind: 'http', probe: 'http', target: 'http://127.0.0.1:8080/', state: 'down', since: '2026-01-01T00:00:00.000Z',
      lastCheck: '2026-01-01T00:00:00.000Z', latencyMs: null, error: 'connection refused', probed: true, streaks: { fail: 3, ok: 0, notOk: 3, notFail: 0 },
    };
    const { monitor, events } = monitorOf(config, [stored]);
    expect(monitor.record('box.web')).toMatchObject({ state: 'unknown', probed: false, reason: 'planned' });
    expect(events).toMatchObject([{ key: 'box.web', previous: 'down', state: 'unknown' }]);
  });
});

describe('$SRV discovery rounds', () => {
  it('adds services it sees, marks one missing for N rounds down, and forgets it much later', () => {
    const config = labConfig('      web: { kind: http, port: 8080, planned: true }', '{ missedRoundsBeforeDown: 2, forgetAfterMs: 60000 }');
    const { monitor, events } = monitorOf(config);
    let now = Date.parse('2026-01-01T00:00:00Z');
    const discovery = new ServiceDiscovery({ nc: {} as NatsConnection, monitor, health: config.health, log: quiet, selfName: 'health', now: () => now });
    const reply = (name: string, id = `${name}-1`) => ({ name, id, version: '0.1.0', rttMs: 1.5 });
    discovery.apply([reply('health'), reply('router'), reply('worker-vllm'), reply('worker-vllm', 'w2')]);
    expect(monitor.record('gateway.worker-vllm')).toMatchObject({ state: 'up', kind: 'nats-service', target: '$SRV.PING.worker-vllm', detail: { instances: 2, version: '0.1.0' } });
    discovery.apply([reply('health'), reply('worker-vllm')]);
    expect(monitor.record('gateway.router')?.state).toBe('up');
    discovery.apply([reply('health'), reply('worker-vllm')]);
    expect(monitor.record('gateway.router')).toMatchObject({ state: 'down', error: 'no answer to $SRV.PING' });
    expect(events.filter((e) => e.key === 'gateway.router').map((e) => e.state)).toEqual(['up', 'down']);
    now += 61_000;
    discovery.apply([reply('health'), reply('worker-vllm')]);
    expect(monitor.has('gateway.router')).toBe(false);
    discovery.apply([reply('health'), reply('worker-vllm'), reply('router')]);
    expect(monitor.record('gateway.router')?.state).toBe('up');
  });
});
