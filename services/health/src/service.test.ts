import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import {
  HEALTH_KV_BUCKET, HealthBook, HealthSnapshotSchema, consumeEvents, validator, type HealthChanged, type HealthSnapshot, type HealthTargetStatus, type NatsConnection,
} from '@homelab/bus';
import { createLogger } from '@homelab/logging';
import { connectAs, startNatsServer, startServiceProcess, type ServiceProcess, type TestNatsServer } from '@homelab/testing';
import { closedPort, sleep, startHttpServer, waitFor, type LocalServer } from './testkit.ts';

/*
 * The health service as it runs: its own process, a real nats-server with the project's
 * nats.conf, a config written here pointing at loopback servers started here.
 */

const quiet = createLogger({ service: 'test', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
const enc = new TextEncoder();
const checkSnapshot = validator(HealthSnapshotSchema);

let nats: TestNatsServer;
let dir: string;
let configFile: string;
let jellyfin: LocalServer;
let sonarr: LocalServer;
let hooks: LocalServer;
let jellyfinHealthy = true;
let sonarrHealthy = true;
let health: ServiceProcess | undefined;

beforeAll(async () => {
  nats = await startNatsServer();
  dir = mkdtempSync(join(tmpdir(), 'homelab-health-e2e-'));
  jellyfin = await startHttpServer((_q, res) => { res.statusCode = jellyfinHealthy ? 200 : 503; res.end(jellyfinHealthy ? 'Healthy' : 'Unhealthy'); });
  sonarr = await startHttpServer((_q, res) => {
    res.setHeader('content-type', 'application/json');
    res.statusCode = sonarrHealthy ? 200 : 500;
    res.end(JSON.stringify({ status: sonarrHealthy ? 'OK' : 'Error' }));
  });
  hooks = await startHttpServer((_q, res) => res.end('ok'));
  configFile = join(dir, 'lab.yaml');
  writeFileSync(configFile, `
lab: { name: e2e-lab }
nats: { url: ${nats.url} }
nodes:
  media-node:
    address: 127.0.0.1
    services:
      jellyfin: { kind: jellyfin, port: ${jellyfin.port} }
      sonarr: { kind: sonarr, port: ${sonarr.port}, apiKey: sonarr-api-key-secret }
      gone: { kind: tcp, port: ${await closedPort()} }
  router:
    address: 127.0.0.1
  lab-vm: {}
health:
  intervalMs: 150
  retryIntervalMs: 60
  # Generous: a loaded CI machine must not turn a slow loopback answer into a state change.
  timeoutMs: 3000
  degradedLatencyMs: 5000
  failuresBeforeDown: 2
  successesBeforeUp: 2
  targets:
    router/host: { port: ${sonarr.port} }
  discovery: { intervalMs: 250, waitMs: 120, missedRoundsBeforeDown: 2 }
  alerts:
    webhook: { url: "${hooks.url}/hook" }
`);
  health = await startServiceProcess('health', { nats, env: { HOMELAB_CONFIG: configFile } });
});

afterAll(async () => {
  await health?.stop();
  await nats?.[Symbol.asyncDispose]();
  await Promise.all([jellyfin, sonarr, hooks].map((s) => s?.close()));
  rmSync(dir, { recursive: true, force: true });
});

async function status(nc: NatsConnection, filter?: unknown): Promise<HealthSnapshot> {
  const reply = await nc.request('health.status', filter === undefined ? undefined : enc.encode(JSON.stringify(filter)), { timeout: 2000 });
  const body: unknown = JSON.parse(reply.string());
  if (!checkSnapshot.check(body)) throw new Error(`not a snapshot: ${reply.string().slice(0, 300)}`);
  return body;
}

const stateOf = (snap: HealthSnapshot, key: string) => snap.targets.find((t) => t.key === key)?.state;
const alerts = () => hooks.requests.filter((r) => r.url === '/hook').map((r) => JSON.parse(r.body) as { type: string; key: string; state: string });

/** A durable consumer of HEALTH, as the router would run it. */
async function consumer(nc: NatsConnection, seen: HealthChanged[]) {
  return consumeEvents({ nc, log: quiet, stream: 'HEALTH', durable: 'test-router', handler: (_s, p) => { seen.push(p as HealthChanged); } });
}

describe('health service end to end', () => {
  it('probes the lab, serves health.status, stores events and KV, survives a restart without spurious events', async () => {
    await using scripts = await connectAs(nats, 'scripts');
    await using router = await connectAs(nats, 'router');

    // Every target reaches its first state; unprobed ones are listed.
    const first = await waitFor(async () => {
      const s = await status(scripts);
      return ['media-node.jellyfin', 'media-node.sonarr', 'media-node.gone', 'router.host', 'gateway.health'].every((k) => (stateOf(s, k) ?? 'unknown') !== 'unknown') ? s : undefined;
    }, 10_000, 'first states');
    expect(Object.fromEntries(first.targets.map((t) => [t.key, t.state]))).toEqual({
      'media-node.jellyfin': 'up', 'media-node.sonarr': 'up', 'media-node.gone': 'down', 'router.host': 'up', 'lab-vm.host': 'unknown', 'gateway.health': 'up',
    });
    expect(first.targets.find((t) => t.key === 'lab-vm.host')).toMatchObject({ probed: false, reason: 'no address' });
    expect(first.targets.find((t) => t.key === 'media-node.gone')).toMatchObject({ error: 'connection refused', probe: 'tcp' });
    expect(first).toMatchObject({ lab: 'e2e-lab', overall: 'down' });
    expect(JSON.stringify(first)).not.toContain('sonarr-api-key-secret');
    expect((await status(scripts, { state: 'down' })).targets.map((t) => t.key)).toEqual(['media-node.gone']);
    // The router may ask too (nats.conf), and read the KV bucket directly.
    expect(stateOf(await status(router), 'media-node.sonarr')).toBe('up');
    const kv = await new Kvm(router).open(HEALTH_KV_BUCKET, { allow_direct: true });
    const stored = (await kv.get('media-node.jellyfin'))?.json<HealthTargetStatus>();
    expect(stored).toMatchObject({ key: 'media-node.jellyfin', node: 'media-node', service: 'jellyfin', state: 'up', kind: 'jellyfin', probe: 'http' });

    // The router's durable consumer sees the first states, then goes away.
    const seen: HealthChanged[] = [];
    let c = await consumer(router, seen);
    await waitFor(() => seen.length >= 5, 5000, 'initial events');
    expect(seen.map((e) => `${e.key}:${e.previous}>${e.state}`).sort()).toEqual([
      'gateway.health:unknown>up', 'media-node.gone:unknown>down', 'media-node.jellyfin:unknown>up', 'media-node.sonarr:unknown>up', 'router.host:unknown>up',
    ]);
    const book = new HealthBook();
    book.applySnapshot(first);
    for (const e of seen) book.applyEvent(e);
    expect(book.usable('media-node/gone')).toBe(false);
    expect(book.usable('media-node/jellyfin')).toBe(true);
    await c.stop();

    // Jellyfin dies while the consumer is away: one event, one alert.
    jellyfinHealthy = false;
    await waitFor(async () => stateOf(await status(scripts), 'media-node.jellyfin') === 'down', 5000, 'jellyfin down');
    await waitFor(() => alerts().some((a) => a.key === 'media-node.jellyfin' && a.state === 'down'), 5000, 'down alert');
    expect(alerts().map((a) => `${a.type} ${a.key} ${a.state}`)).toEqual(['health.alert media-node.gone down', 'health.alert media-node.jellyfin down']);

    // The consumer comes back and gets what it missed, nothing else.
    seen.length = 0;
    c = await consumer(router, seen);
    await waitFor(() => seen.length >= 1, 5000, 'missed event');
    await sleep(300);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ key: 'media-node.jellyfin', node: 'media-node', service: 'jellyfin', previous: 'up', state: 'down', error: 'HTTP 503: Unhealthy' });
    book.applyEvent(seen[0]!);
    expect(book.usable('media-node/jellyfin')).toBe(false);

    // The health service restarts: the snapshot survives in KV, no transition is invented.
    const jsm = await jetstreamManager(scripts);
    const before = (await jsm.streams.info('HEALTH')).state.messages;
    const beforeSnap = await status(scripts);
    await health!.stop();
    health = await startServiceProcess('health', { nats, env: { HOMELAB_CONFIG: configFile } });
    await health.waitForLog((l) => l['msg'] === 'started');
    const right = await status(scripts);
    expect(stateOf(right, 'media-node.jellyfin')).toBe('down');
    expect(right.targets.find((t) => t.key === 'media-node.jellyfin')!.since).toBe(beforeSnap.targets.find((t) => t.key === 'media-node.jellyfin')!.since);
    await sleep(1500); // many probe and discovery rounds
    expect(seen.map((e) => `${e.key}:${e.previous}>${e.state} ${e.error ?? ''}`)).toEqual(['media-node.jellyfin:up>down HTTP 503: Unhealthy']);
    expect((await jsm.streams.info('HEALTH')).state.messages).toBe(before);
    expect(alerts()).toHaveLength(2);
    const after = await status(scripts);
    for (const t of beforeSnap.targets) expect({ key: t.key, state: stateOf(after, t.key) }).toEqual({ key: t.key, state: t.state });

    // Recovery: an event and a recovery message.
    jellyfinHealthy = true;
    await waitFor(() => seen.some((e) => e.key === 'media-node.jellyfin' && e.state === 'up'), 5000, 'recovery event');
    await waitFor(() => alerts().some((a) => a.type === 'health.recovery'), 5000, 'recovery alert');
    await c.stop();

    // Probe results are kept for metrics.
    expect((await jsm.streams.info('HEALTH_PROBES')).state.messages).toBeGreaterThan(10);
    // `health.status` is not captured by a stream (it would be answered by a JetStream ack).
    const streams = await jsm.streams.info('HEALTH');
    expect(streams.config.subjects).toEqual(['health.*.*']);
  }, 60_000);

  it('discovers a running micro service through $SRV and reports it down when it is killed', async () => {
    await using scripts = await connectAs(nats, 'scripts');
    const fixture = fileURLToPath(new URL('./fixtures/srv-service.ts', import.meta.url));
    const child: ChildProcess = spawn(process.execPath, [fixture], {
      env: { PATH: process.env['PATH'] ?? '', ...nats.envFor('media'), SRV_NAME: 'media' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      await waitFor(async () => stateOf(await status(scripts), 'gateway.media') === 'up', 10_000, 'media discovered');
      expect((await status(scripts)).targets.find((t) => t.key === 'gateway.media')).toMatchObject({
        node: 'gateway', service: 'media', kind: 'nats-service', probe: 'srv', target: '$SRV.PING.media', detail: { instances: 1, version: '9.9.9' },
      });
      child.kill('SIGKILL');
      const down = await waitFor(async () => {
        const t = (await status(scripts)).targets.find((x) => x.key === 'gateway.media');
        return t?.state === 'down' ? t : undefined;
      }, 10_000, 'media down');
      expect(down.error).toBe('no answer to $SRV.PING');
      // Nothing went wrong inside the service along the way.
      expect(health!.logs.filter((l) => l['level'] === 'error' || l['level'] === 'fatal' || l['msg'] === 'probe results not stored')).toEqual([]);
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);

  it('a change while NATS is down is published once NATS is back; the outage itself invents nothing', async () => {
    {
      await using router = await connectAs(nats, 'router');
      const drained: HealthChanged[] = [];
      const c = await consumer(router, drained); // catch up on everything so far
      await sleep(500);
      await c.stop();
    }
    await nats.stop();
    sonarrHealthy = false;
    await sleep(1500); // the probes see it: down after two failures
    await nats.start();
    await using router = await connectAs(nats, 'router');
    const seen: HealthChanged[] = [];
    const c = await consumer(router, seen);
    try {
      await waitFor(() => seen.some((e) => e.key === 'media-node.sonarr' && e.state === 'down'), 20_000, 'sonarr down event after the outage');
      await sleep(1000);
      expect(seen.map((e) => `${e.key}:${e.previous}>${e.state}`)).toEqual(['media-node.sonarr:up>down']);
      expect(seen[0]!.error).toBe('HTTP 500: {"status":"Error"}');
    } finally {
      sonarrHealthy = true;
      await c.stop();
    }
  }, 40_000);
});
