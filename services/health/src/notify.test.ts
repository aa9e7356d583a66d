import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { HealthChanged, HealthState } from '@homelab/bus';
import { parseConfig } from '@homelab/config';
import { createLogger } from '@homelab/logging';
import { AlertPolicy, Notifier, duration } from './notify.ts';
import { startHttpServer, type LocalServer } from './testkit.ts';

function logCapture(): { log: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({ write(chunk, _e, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  return { log: createLogger({ service: 'health', destination: stream }), lines };
}

let n = 0;
function change(key: string, previous: HealthState, state: HealthState, extra: Partial<HealthChanged> = {}): HealthChanged {
  n++;
  const [node = '', service = ''] = key.split('.');
  return {
    id: `${key}@${n}:${state}`, key, node, service, kind: 'vllm', target: 'http://127.0.0.1:8000/health', state, previous,
    since: new Date(Date.UTC(2026, 0, 1, 12, 0, n * 10)).toISOString(), previousSince: new Date(Date.UTC(2026, 0, 1, 12, 0, 0)).toISOString(),
    latencyMs: state === 'up' ? 12 : null, error: state === 'down' ? 'connection refused' : null, ...extra,
  };
}

describe('AlertPolicy', () => {
  it('alerts once when a target goes down, never again while it holds, and once on recovery', () => {
    const p = new AlertPolicy(false);
    const k = 'ai-node.vllm';
    expect(p.decide(change(k, 'unknown', 'up'))).toBeNull(); // first sight, fine: nothing to say
    expect(p.decide(change(k, 'up', 'down'))).toEqual({ kind: 'alert', level: 'down' });
    expect(p.decide(change(k, 'down', 'unknown'))).toBeNull();
    expect(p.decide(change(k, 'unknown', 'down'))).toBeNull(); // still down: no repeat
    expect(p.decide(change(k, 'down', 'degraded'))).toEqual({ kind: 'recovery', level: 'ok' }); // degraded is fine unless notifyDegraded
    expect(p.decide(change(k, 'degraded', 'up'))).toBeNull();
  });

  it('with notifyDegraded, degraded is its own alert', () => {
    const p = new AlertPolicy(true);
    expect(p.decide(change('a.b', 'up', 'degraded'))).toEqual({ kind: 'alert', level: 'degraded' });
    expect(p.decide(change('a.b', 'degraded', 'down'))).toEqual({ kind: 'alert', level: 'down' });
    expect(p.decide(change('a.b', 'down', 'up'))).toEqual({ kind: 'recovery', level: 'ok' });
  });

  it('after a restart, states already down are not announced again', () => {
    const p = new AlertPolicy(false);
    p.seed([{ key: 'a.b', state: 'down' } as Parameters<AlertPolicy['seed']>[0][number]]);
    expect(p.decide(change('a.b', 'unknown', 'down'))).toBeNull();
    expect(p.decide(change('a.b', 'down', 'up'))).toEqual({ kind: 'recovery', level: 'ok' });
  });

  it('formats durations', () => {
    expect(duration(42_000)).toBe('42s');
    expect(duration(125_000)).toBe('2m 5s');
    expect(duration(3 * 3600_000 + 60_000)).toBe('3h 1m');
  });
});

describe('Notifier against a local receiver', () => {
  let receiver: LocalServer | undefined;
  afterEach(async () => { await receiver?.close(); receiver = undefined; });

  it('posts the webhook JSON and the ntfy message, with the token, and a recovery later', async () => {
    receiver = await startHttpServer((_q, res) => { res.end('{}'); });
    const alerts = parseConfig(`nodes: {}\nhealth:\n  alerts:\n    webhook: { url: "${receiver.url}/hooks/abc", headers: { x-hook-secret: s3cret-value } }\n    ntfy: { url: "${receiver.url}/ntfy", topic: homelab }\n`, 'lab.yaml', { NTFY_TOKEN: 'tk_ntfy_secret' }).health.alerts;
    const { log } = logCapture();
    const notifier = new Notifier({ alerts, lab: 'homelab', log });
    await notifier.notify(change('media-node.sonarr', 'up', 'down'));
    await notifier.notify(change('media-node.sonarr', 'down', 'down'));
    await notifier.notify(change('media-node.sonarr', 'down', 'up'));
    const hooks = receiver.requests.filter((r) => r.url === '/hooks/abc');
    const ntfy = receiver.requests.filter((r) => r.url === '/ntfy/homelab');
    expect(hooks).toHaveLength(2);
    expect(ntfy).toHaveLength(2);
    expect(hooks[0]!.headers['x-hook-secret']).toBe('s3cret-value');
    expect(JSON.parse(hooks[0]!.body)).toMatchObject({
      type: 'health.alert', lab: 'homelab', level: 'down', key: 'media-node.sonarr', node: 'media-node', service: 'sonarr', state: 'down', previous: 'up',
      error: 'connection refused', title: '[homelab] DOWN: media-node/sonarr', message: 'media-node/sonarr is down: connection refused (http://127.0.0.1:8000/health).',
    });
    expect(JSON.parse(hooks[1]!.body)).toMatchObject({ type: 'health.recovery', state: 'up', title: '[homelab] RECOVERED: media-node/sonarr' });
    expect(ntfy[0]!.headers).toMatchObject({ title: '[homelab] DOWN: media-node/sonarr', priority: 'high', tags: 'rotating_light', authorization: 'Bearer tk_ntfy_secret' });
    expect(ntfy[0]!.body).toBe('media-node/sonarr is down: connection refused (http://127.0.0.1:8000/health).');
    expect(ntfy[1]!.headers).toMatchObject({ tags: 'white_check_mark' });
    expect(ntfy[1]!.body).toMatch(/^media-node\/sonarr is up again after [0-9hms ]+ down \(12 ms\)\.$/);
  });

  it('retries a failing receiver, then logs without the URL path or secrets, and never throws', async () => {
    let calls = 0;
    receiver = await startHttpServer((_q, res) => { calls++; res.statusCode = 502; res.end('bad gateway'); });
    const alerts = parseConfig(`nodes: {}\nhealth: { alerts: { webhook: { url: "${receiver.url}/secret-path-token" } } }\n`, 'lab.yaml', {}).health.alerts;
    const { log, lines } = logCapture();
    const notifier = new Notifier({ alerts, lab: 'homelab', log, attempts: 3, retryDelayMs: 10 });
    await notifier.notify(change('a.b', 'up', 'down'));
    expect(calls).toBe(3);
    const warn = lines.find((l) => l['msg'] === 'alert not delivered');
    expect(warn).toMatchObject({ channel: 'webhook', to: receiver.url, err: 'HTTP 502' });
    expect(JSON.stringify(lines)).not.toContain('secret-path-token');
  });

  it('an unreachable receiver is logged, not thrown', async () => {
    const alerts = parseConfig('nodes: {}\nhealth: { alerts: { timeoutMs: 500, ntfy: { url: "http://127.0.0.1:9", topic: t } } }\n', 'lab.yaml', {}).health.alerts;
    const { log, lines } = logCapture();
    const notifier = new Notifier({ alerts, lab: 'homelab', log, attempts: 1 });
    await expect(notifier.notify(change('a.b', 'up', 'down'))).resolves.toBeUndefined();
    expect(lines.find((l) => l['msg'] === 'alert not delivered')).toMatchObject({ channel: 'ntfy' });
  });
});
