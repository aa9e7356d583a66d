import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { createLogger } from '@homelab/logging';
import { connectAs, connectionErrors, startNatsServer, type TestNatsServer } from '@homelab/testing';
import {
  EventPublisher, GatewayError, H, MicroService, ReplyMux, inboxPrefixOf, Streams, Subjects, connectBus, consumeEvents, ensureStreams, errorFromReply, respondJson,
} from './index.ts';
import { Type } from '@sinclair/typebox';

const quiet = createLogger({ service: 'test', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
const dec = new TextDecoder();
const enc = new TextEncoder();

let nats: TestNatsServer;
beforeAll(async () => { nats = await startNatsServer(); });
afterAll(async () => { await nats?.[Symbol.asyncDispose](); });

describe('MicroService ($SRV protocol)', () => {
  it('answers PING, INFO and STATS, and validates requests with error headers', async () => {
    await using nc = await connectAs(nats, 'router');
    const svc = new MicroService(nc, { name: 'router', version: '1.2.3', description: 'decides' }, quiet);
    svc.addEndpoint('models', {
      subject: Subjects.models.subject, schema: Type.Object({ id: Type.String() }, { additionalProperties: false }),
      handler: ({ msg, payload }) => respondJson(msg, { got: payload.id }),
    });
    svc.announce();
    await nc.flush();
    await using client = await connectAs(nats, 'scripts');

    const ping = JSON.parse((await client.request('$SRV.PING.router', undefined, { timeout: 1000 })).string());
    expect(ping).toMatchObject({ type: 'io.nats.micro.v1.ping_response', name: 'router', version: '1.2.3', id: svc.id });
    const info = JSON.parse((await client.request('$SRV.INFO', undefined, { timeout: 1000 })).string());
    expect(info.endpoints).toEqual([{ name: 'models', subject: 'inference.models', queue_group: 'q', metadata: {} }]);

    const ok = await client.request('inference.models', enc.encode('{"id":"x"}'), { timeout: 1000 });
    expect(JSON.parse(ok.string())).toEqual({ got: 'x' });

    const bad = await client.request('inference.models', enc.encode('{"id":7}'), { timeout: 1000 });
    expect(bad.headers?.get(H.serviceErrorCode)).toBe('400');
    expect(bad.headers?.get(H.serviceError)).toBe('id: expected a string, got number 7');
    expect(JSON.parse(bad.string())).toMatchObject({ error: { type: 'invalid_request_error', param: 'id', code: 'invalid_request' } });
    expect(errorFromReply(bad.headers, bad.data)).toBeInstanceOf(GatewayError);

    const broken = await client.request('inference.models', enc.encode('{nope'), { timeout: 1000 });
    expect(broken.headers?.get(H.errorCode)).toBe('invalid_json');

    const stats = JSON.parse((await client.request('$SRV.STATS.router', undefined, { timeout: 1000 })).string());
    expect(stats.endpoints[0]).toMatchObject({ name: 'models', num_requests: 3, num_errors: 2 });
    expect(stats.endpoints[0].last_error).toMatch(/^400:/);
    await svc.stop();
  });
});

describe('nats.conf permissions', () => {
  it('keeps a service to its own subjects', async () => {
    await using nc = await connectAs(nats, 'worker-vllm');
    const denied = new Promise<string>((resolve) => {
      void (async () => { for await (const s of nc.status()) if (s.type === 'error') resolve(s.error.message); })();
    });
    // A worker may not serve the router's public subject…
    nc.subscribe('inference.chat.completions', { callback: () => {} });
    expect(await denied).toMatch(/Permissions Violation for Subscription to "inference.chat.completions"/i);
  });

  it('refuses a worker publishing outside its subjects', async () => {
    await using nc = await connectAs(nats, 'worker-vllm');
    const errors = connectionErrors(nc);
    nc.publish('media.download.completed', enc.encode('{}'));
    nc.publish('worker.ollama.chat', enc.encode('{}'));
    await nc.flush();
    await new Promise((r) => setTimeout(r, 200));
    expect(errors.join('\n')).toMatch(/Permissions Violation for Publish to "media.download.completed"/);
    expect(errors.join('\n')).toMatch(/Permissions Violation for Publish to "worker.ollama.chat"/);
  });

  it('lets scripts make requests but not publish events or impersonate a worker', async () => {
    await using router = await connectAs(nats, 'router');
    await ensureStreams(router, { streams: Streams.filter((x) => x.name === 'INFERENCE') });
    router.subscribe('inference.models', { callback: (_e, m) => { m.respond(enc.encode('{"object":"list","data":[]}')); } });
    await router.flush();

    await using scripts = await connectAs(nats, 'scripts');
    const errors = connectionErrors(scripts);
    const reply = await scripts.request('inference.models', undefined, { timeout: 1000 });
    expect(JSON.parse(reply.string())).toEqual({ object: 'list', data: [] });

    scripts.publish('inference.completed', enc.encode('{"forged":true}'));
    scripts.subscribe('worker.vllm.chat', { callback: () => {} });
    await scripts.flush();
    await new Promise((r) => setTimeout(r, 200));
    expect(errors.join('\n')).toMatch(/Publish to "inference.completed"/);
    expect(errors.join('\n')).toMatch(/Subscription to "worker.vllm.chat"/);
    const jsm = await jetstreamManager(router);
    expect((await jsm.streams.info('INFERENCE')).state.messages).toBe(0);
  });
});

describe('events on JetStream', () => {
  it('a durable consumer that was down gets every event, and invalid events are dropped', async () => {
    await using nc = await connectAs(nats, 'router');
    await ensureStreams(nc, { streams: Streams.filter((x) => x.name === 'INFERENCE') });
    await using telemetry = await connectAs(nats, 'telemetry');
    const seen: unknown[] = [];
    const invalid: string[] = [];
    const publisher = new EventPublisher(nc, new ReplyMux(nc, inboxPrefixOf(nc)));
    const event = (i: number) => ({
      requestId: `r${i}`, operation: 'chat' as const, stream: false, requestedModel: 'fast', status: 'ok' as const, httpStatus: 200,
      attempts: 1, routeReason: 'alias:fast', latencyMs: 1, finishedAt: new Date().toISOString(),
    });
    // Telemetry is "down": events are published before its consumer exists.
    for (let i = 0; i < 5; i++) await publisher.publish('inferenceCompleted', event(i), { msgId: `r${i}` });
    await publisher.publish('inferenceCompleted', event(0), { msgId: 'r0' }); // a retried publish: deduplicated
    await nc.publish('inference.completed', enc.encode('{"not":"an event"}'));
    await nc.flush();
    const consumer = await consumeEvents({
      nc: telemetry, log: quiet, stream: 'INFERENCE', durable: 'telemetry-inference',
      handler: (_s, p) => { seen.push(p); }, onInvalid: (s) => invalid.push(s),
    });
    for (let i = 0; i < 50 && seen.length < 5; i++) await new Promise((r) => setTimeout(r, 50));
    await consumer.stop();
    expect(seen.map((e) => (e as { requestId: string }).requestId)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    expect(invalid).toEqual(['inference.completed']);
  });
});

describe('connectBus', () => {
  it('reconnects after the server restarts and keeps serving its subscriptions', async () => {
    const statuses: boolean[] = [];
    const nc = await connectBus({ servers: nats.url, name: 'router', log: quiet, user: 'router', password: nats.passwords.router, onStatus: (c) => statuses.push(c) });
    nc.subscribe('inference.models', { queue: 'router', callback: (_e, m) => { m.respond(enc.encode('pong')); } });
    await nc.flush();
    await nats.restart({ downMs: 300 });
    await using client = await connectAs(nats, 'scripts');
    let answer = '';
    for (let i = 0; i < 50 && !answer; i++) {
      try { answer = dec.decode((await client.request('inference.models', undefined, { timeout: 500 })).data); } catch { await new Promise((r) => setTimeout(r, 100)); }
    }
    expect(answer).toBe('pong');
    expect(statuses).toEqual([true, false, true]);
    await nc.close();
  });

  it('retries the first connection until the server is up', async () => {
    await nats.stop();
    const log: string[] = [];
    const logger = createLogger({ service: 't', destination: new Writable({ write: (c, _e, cb) => { log.push(String(c)); cb(); } }) });
    const pending = connectBus({ servers: nats.url, name: 'router', log: logger, user: 'router', password: nats.passwords.router });
    await new Promise((r) => setTimeout(r, 1200));
    await nats.start();
    const nc = await pending;
    expect(nc.isClosed()).toBe(false);
    // One warning for the whole series of failed attempts, one line when it connects.
    expect(log.filter((l) => l.includes('NATS unreachable'))).toHaveLength(1);
    expect(log.some((l) => l.includes('connected to NATS') && l.includes('"attempts"'))).toBe(true);
    await nc.close();
  });

  it('fails fast on wrong credentials', async () => {
    await expect(connectBus({ servers: nats.url, name: 'x', log: quiet, user: 'router', password: 'wrong' })).rejects.toThrow(/NATS refused user 'router'/);
  });
});

