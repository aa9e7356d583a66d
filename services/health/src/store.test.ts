import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { HealthChanged, HealthTargetStatus } from '@homelab/bus';
import { createLogger } from '@homelab/logging';
import { HealthWriter } from './store.ts';
import { sleep } from './testkit.ts';

const quiet = createLogger({ service: 'health', destination: new Writable({ write: (_c, _e, cb) => cb() }) });

const record = (key: string, state: HealthTargetStatus['state'], n: number): HealthTargetStatus => ({
  key, node: key.split('.')[0]!, service: key.split('.')[1]!, kind: 'tcp', probe: 'tcp', target: null, state, since: `t${n}`, lastCheck: `t${n}`,
  latencyMs: n, error: null, probed: true, streaks: { fail: 0, ok: n, notOk: 0, notFail: n },
});
const event = (key: string, state: HealthChanged['state'], n: number): HealthChanged => ({
  id: `${key}@${n}:${state}`, key, node: key.split('.')[0]!, service: key.split('.')[1]!, kind: 'tcp', target: null, state, previous: 'up',
  since: `t${n}`, previousSince: 't0', latencyMs: null, error: 'x',
});

describe('HealthWriter', () => {
  it('writes an event before the record that reflects it, and collapses records between events', async () => {
    const log: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const writer = new HealthWriter({
      log: quiet,
      publishEvent: async (e) => { log.push(`event ${e.id}`); },
      putRecord: async (r) => { await gate; log.push(`put ${r.key} ${r.state} ${r.latencyMs}`); },
      deleteRecord: async (k) => { log.push(`delete ${k}`); },
    });
    writer.record(record('a.b', 'up', 1)); // being written (held at the gate)
    writer.record(record('a.b', 'up', 2));
    writer.record(record('a.b', 'up', 3)); // replaces 2
    writer.event(event('a.b', 'down', 4));
    writer.record(record('a.b', 'down', 4));
    writer.record(record('c.d', 'up', 5));
    writer.forget('e.f');
    release();
    await writer.flush();
    expect(log).toEqual(['put a.b up 1', 'put a.b up 3', 'event a.b@4:down', 'put a.b down 4', 'put c.d up 5', 'delete e.f']);
  });

  it('retries an event until the bus takes it, and keeps going when KV writes fail', async () => {
    let failures = 3;
    const published: string[] = [];
    const writer = new HealthWriter({
      log: quiet, retryDelayMs: 5,
      publishEvent: async (e) => { if (failures-- > 0) throw new Error('no responders'); published.push(e.id); },
      putRecord: async () => { throw new Error('kv down'); },
      deleteRecord: async () => {},
    });
    writer.event(event('a.b', 'down', 1));
    writer.record(record('a.b', 'down', 1));
    writer.event(event('a.b', 'up', 2));
    await writer.flush();
    expect(published).toEqual(['a.b@1:down', 'a.b@2:up']);
  });

  it('at shutdown, gives up within the time allowed', async () => {
    const writer = new HealthWriter({
      log: quiet, retryDelayMs: 1000,
      publishEvent: async () => { await sleep(20); throw new Error('down'); },
      putRecord: async () => {}, deleteRecord: async () => {},
    });
    writer.event(event('a.b', 'down', 1));
    writer.event(event('a.b', 'up', 2));
    const started = Date.now();
    await writer.close(500);
    expect(Date.now() - started).toBeLessThan(1500);
  });
});
