import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAs, connectionErrors, startNatsServer, type TestNatsServer } from '@homelab/testing';

// What a person watching the lab types first (`nats --context homelab sub 'health.>'`), with a plain
// NATS client as the `scripts` user and its password (what that context holds): events may be read;
// no request subject may be served. Without credentials the lab refuses the connection.

const enc = new TextEncoder();
let nats: TestNatsServer;
beforeAll(async () => { nats = await startNatsServer(); });
afterAll(async () => { await nats?.[Symbol.asyncDispose](); });

/** A plain client as `scripts`, as the nats CLI connects with the `homelab` context; its permission errors collected. */
async function asScripts(): Promise<{ nc: NatsConnection; errors: string[] }> {
  const nc = await connect({ servers: nats.url, user: 'scripts', pass: nats.passwords.scripts });
  return { nc, errors: connectionErrors(nc) };
}

describe('connecting to the lab', () => {
  it('without credentials, or with a wrong password: refused', async () => {
    await expect(connect({ servers: nats.url, timeout: 3000 })).rejects.toThrow(/authorization/i);
    await expect(connect({ servers: nats.url, user: 'scripts', pass: 'not-its-password', timeout: 3000 })).rejects.toThrow(/authorization/i);
    await expect(connect({ servers: nats.url, user: 'anonymous', pass: '', timeout: 3000 })).rejects.toThrow(/authorization/i);
  });
});

describe('the scripts identity', () => {
  it('subscribes to the event subjects and receives what the services publish', async () => {
    const { nc, errors } = await asScripts();
    const seen: string[] = [];
    for (const subject of ['health.>', 'media.>', 'inference.completed', 'inference.circuit', 'images.progress.*', 'images.completed.*', 'images.failed.*', 'images.cancelled.*']) {
      nc.subscribe(subject, { callback: (_e, m) => { seen.push(m.subject); } });
    }
    await nc.flush();
    await using health = await connectAs(nats, 'health');
    await using media = await connectAs(nats, 'media');
    await using router = await connectAs(nats, 'router');
    health.publish('health.ai-node.vllm', enc.encode('{}'));
    health.publish('health.probe.ai-node.vllm', enc.encode('{}'));
    media.publish('media.download.imported', enc.encode('{}'));
    router.publish('inference.completed', enc.encode('{}'));
    router.publish('inference.circuit', enc.encode('{}'));
    await Promise.all([health.flush(), media.flush(), router.flush()]);
    const deadline = Date.now() + 5000;
    while (seen.length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(seen.sort()).toEqual(['health.ai-node.vllm', 'health.probe.ai-node.vllm', 'inference.circuit', 'inference.completed', 'media.download.imported']);
    expect(errors).toEqual([]);
    await nc.close();
  });

  it('a wildcard subscription never receives a request meant for a service, so it cannot answer it', async () => {
    const { nc, errors } = await asScripts();
    const stolen: string[] = [];
    // Even in the service's own queue group: the denied subjects are not delivered to this subscription.
    nc.subscribe('health.>', { queue: 'health', callback: (_e, m) => { stolen.push(m.subject); m.respond(enc.encode('{"forged":true}')); } });
    nc.subscribe('media.>', { queue: 'media', callback: (_e, m) => { stolen.push(m.subject); m.respond(enc.encode('{"forged":true}')); } });
    await nc.flush();
    await using health = await connectAs(nats, 'health');
    health.subscribe('health.status', { queue: 'health', callback: (_e, m) => { m.respond(enc.encode('{"real":true}')); } });
    await using media = await connectAs(nats, 'media');
    media.subscribe('media.status', { queue: 'media', callback: (_e, m) => { m.respond(enc.encode('{"real":true}')); } });
    await Promise.all([health.flush(), media.flush()]);
    await using asker = await connectAs(nats, 'scripts');
    for (let i = 0; i < 10; i++) {
      expect((await asker.request('health.status', undefined, { timeout: 2000 })).json()).toEqual({ real: true });
      expect((await asker.request('media.status', undefined, { timeout: 2000 })).json()).toEqual({ real: true });
    }
    expect(stolen).toEqual([]);
    expect(errors).toEqual([]);
    await nc.close();
  });

  it.each([
    'health.status', 'media.status', 'inference.chat.completions', 'inference.embeddings', 'inference.models', 'inference.cancel', 'inference.>', 'inference.*',
    'worker.vllm.chat', 'worker.ollama.models', 'worker.>', 'keys.create', 'keys.list', 'keys.revoke', 'keys.>', '>',
  ])('may not subscribe to the request subject %s', async (subject) => {
    const { nc, errors } = await asScripts();
    nc.subscribe(subject, { callback: () => {} });
    await nc.flush();
    const deadline = Date.now() + 5000;
    while (errors.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(errors.join('\n')).toMatch(new RegExp(`Permissions Violation for Subscription to "${subject.replace(/[.*>]/g, (c) => `\\${c}`)}"`, 'i'));
    await nc.close().catch(() => {});
  });
});
