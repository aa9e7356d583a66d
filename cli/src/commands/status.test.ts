import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HealthSnapshot, HealthTargetStatus } from '@homelab/bus';
import { connectAs, startNatsServer, type TestNatsServer } from '@homelab/testing';
import { formatStatus, statusCommand } from './status.ts';

function sink(): { out: Writable; text: () => string } {
  let text = '';
  return { out: new Writable({ write(c, _e, cb) { text += String(c); cb(); } }), text: () => text };
}

const target = (node: string, service: string, state: HealthTargetStatus['state'], extra: Partial<HealthTargetStatus> = {}): HealthTargetStatus => ({
  key: `${node}.${service}`, node, service, kind: service, probe: 'http', target: `http://192.168.1.7:8000/${service}`, state,
  since: '2026-01-01T10:00:00.000Z', lastCheck: '2026-01-01T12:00:00.000Z', latencyMs: state === 'down' ? null : 12.4, error: null, probed: true,
  streaks: { fail: 0, ok: 1, notOk: 0, notFail: 1 }, ...extra,
});

const snapshot: HealthSnapshot = {
  lab: 'homelab', generatedAt: '2026-01-01T12:05:00.000Z', startedAt: '2026-01-01T09:00:00.000Z', overall: 'down',
  counts: { up: 2, degraded: 1, down: 1, unknown: 1 },
  targets: [
    target('ai-node', 'vllm', 'down', { error: 'connection refused', since: '2026-01-01T12:00:00.000Z' }),
    target('ai-node', 'ollama', 'up', { probe: 'ollama', target: 'http://192.168.1.7:11434/api/version', detail: { version: '0.12.3', loaded: 'llama3.2:3b' } }),
    target('media-node', 'sonarr', 'degraded', { latencyMs: 2500, error: 'slow: 2500 ms (over 2000 ms)' }),
    target('router', 'host', 'up', { probe: 'tcp', target: '192.168.1.1:80', latencyMs: 1.2 }),
    target('lab-vm', 'host', 'unknown', { probed: false, reason: 'no address', target: null, latencyMs: null, lastCheck: null }),
  ],
};

describe('formatStatus', () => {
  it('renders a readable table with why each target is not up', () => {
    expect(formatStatus(snapshot)).toBe([
      'homelab: DOWN — 2 up, 1 degraded, 1 down, 1 not probed/unknown',
      'NODE        SERVICE  STATE     LATENCY  FOR    DETAIL',
      'ai-node     vllm     DOWN            -  5m     connection refused',
      'ai-node     ollama   up          12 ms  2h 5m  http://192.168.1.7:11434/api/version  v0.12.3  loaded: llama3.2:3b',
      'media-node  sonarr   DEGRADED    2.5 s  2h 5m  slow: 2500 ms (over 2000 ms)',
      'router      host     up           1 ms  2h 5m  192.168.1.1:80',
      'lab-vm      host     -               -  2h 5m  not probed: no address',
      '',
    ].join('\n'));
  });
});

describe('homelab status over NATS', () => {
  let nats: TestNatsServer;
  beforeAll(async () => { nats = await startNatsServer(); });
  afterAll(async () => { await nats?.[Symbol.asyncDispose](); });

  it('prints the table, exits 1 when something is down, 0 when not, and passes the node filter', async () => {
    await using health = await connectAs(nats, 'health');
    const asked: string[] = [];
    health.subscribe('health.status', {
      queue: 'health',
      callback: (_e, msg) => {
        const filter = msg.data.length ? (JSON.parse(msg.string()) as { node?: string }) : {};
        asked.push(msg.string());
        const targets = filter.node ? snapshot.targets.filter((t) => t.node === filter.node) : snapshot.targets;
        msg.respond(new TextEncoder().encode(JSON.stringify({ ...snapshot, targets })));
      },
    });
    await health.flush();
    await using scripts = await connectAs(nats, 'scripts');

    const all = sink();
    expect(await statusCommand(scripts, [], all.out)).toBe(1);
    expect(all.text()).toContain('ai-node     vllm     DOWN');

    const router = sink();
    expect(await statusCommand(scripts, ['--node', 'router'], router.out)).toBe(0);
    expect(asked.at(-1)).toBe('{"node":"router"}');
    expect(router.text()).toContain('router  host');
    expect(router.text()).not.toContain('vllm');

    const strict = sink();
    expect(await statusCommand(scripts, ['--node', 'media-node', '--strict'], strict.out)).toBe(1);

    const down = sink();
    await statusCommand(scripts, ['--down'], down.out);
    expect(down.text().trim().split('\n').slice(2).map((l) => l.split(/\s+/)[1])).toEqual(['vllm', 'sonarr']);

    const json = sink();
    expect(await statusCommand(scripts, ['--json'], json.out)).toBe(1);
    expect(JSON.parse(json.text())).toEqual(snapshot);
  });

  it('exits 2 with a clear message when the health service does not answer', async () => {
    await using scripts = await connectAs(nats, 'scripts');
    const none = sink();
    expect(await statusCommand(scripts, ['--timeout', '500'], none.out)).toBe(2);
    expect(none.text()).toMatch(/^cannot get the lab's status: the health service is not running \(nothing answers health.status\)$/m);
    const bad = sink();
    expect(await statusCommand(scripts, ['--bogus'], bad.out)).toBe(64);
    expect(bad.text()).toMatch(/usage: homelab status/);
  });
});
