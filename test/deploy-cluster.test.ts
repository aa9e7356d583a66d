import { describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { EventPublisher, ReplyMux, inboxPrefixOf, ensureStreams, Streams } from '@homelab/bus';
import { connectNode, startDeployedNats } from './helpers/nats-cluster.ts';
import { chat, freePort, startSpreadStack, type Outcome } from './helpers/deploy-stack.ts';
import { sampleSum, waitFor } from './telemetry-kit.ts';

/*
 * deploy/nats/cluster: the three-server hub, started from its real files on loopback, with the
 * stack's services spread over the three servers (each connected to one, as a service on a node
 * connects to its local server; they learn the others from the cluster). One server is killed
 * (SIGKILL, a machine losing power) under steady inference and event traffic.
 */

/**
 * Every message of a stream, in order (an ordered consumer as the `scripts` user). Right after a server
 * died its leaders are elected again, and for a while the cluster may still place a new consumer on the
 * dead server: creating one times out meanwhile, so retry (up to about a minute).
 */
async function readStream(nc: NatsConnection, stream: string): Promise<{ subject: string; data: Record<string, unknown> }[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await readStreamOnce(nc, stream);
    } catch (err) {
      if (attempt >= 12) throw err;
    }
  }
}

async function readStreamOnce(nc: NatsConnection, stream: string): Promise<{ subject: string; data: Record<string, unknown> }[]> {
  const jsm = await jetstreamManager(nc);
  const total = (await jsm.streams.info(stream)).state.messages;
  const out: { subject: string; data: Record<string, unknown> }[] = [];
  if (total === 0) return out;
  const consumer = await jetstream(nc).consumers.get(stream);
  const messages = await consumer.consume();
  for await (const m of messages) {
    out.push({ subject: m.subject, data: m.json() });
    if (out.length >= total) break;
  }
  await messages.close();
  return out;
}

describe('the three-server hub (deploy/nats/cluster)', () => {
  it('one server killed under inference and event traffic: requests go on, no event is lost or doubled, telemetry counts stay exact', async () => {
    await using nats = await startDeployedNats({ hubServers: 3 });
    await using stack = await startSpreadStack({ replicas: 3, tokens: 10, tokenIntervalMs: 10 });
    const [a, b, c] = nats.hubs as [typeof nats.hubs[0], typeof nats.hubs[0], typeof nats.hubs[0]];
    const ingressPorts: number[] = [await freePort(), await freePort()];

    // The streams at R3, as the services create them; the replica check of ensureStreams passes on three servers.
    const setup = await connectNode(a, nats.passwords, 'telemetry');
    await ensureStreams(setup, { replicas: 3, streams: Streams.filter((s) => s.name === 'INFERENCE' || s.name === 'MEDIA') });
    const jsm = await jetstreamManager(setup);
    expect((await jsm.streams.info('INFERENCE')).config.num_replicas).toBe(3);
    await setup.close();

    // Spread over the three servers: each server carries a copy of most services.
    await Promise.all([stack.start('worker-vllm', a), stack.start('worker-ollama', b), stack.start('worker-ollama', c), stack.start('worker-cloud', c)]);
    await Promise.all([stack.start('router', a), stack.start('router', b)]);
    // Port 0: telemetry binds a free port itself and logs it (no race with other processes for a picked one).
    const telemetryProc = await stack.start('telemetry', c, { METRICS_PORT: '0', METRICS_HOST: '127.0.0.1' });
    const metricsPort = Number((await telemetryProc.waitForLog((l) => typeof l['port'] === 'number' && String(l['msg']).startsWith('metrics on'))).port);
    // A port picked free may be taken by the time the ingress binds it (an outbound connection's port): pick again.
    const startIngress = async (i: 0 | 1, node: typeof a): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        try {
          await stack.start('ingress', node, { PORT: String(ingressPorts[i]) });
          return;
        } catch (err) {
          if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
          ingressPorts[i] = await freePort();
        }
      }
    };
    await Promise.all([startIngress(0, b), startIngress(1, c)]);
    const ingresses = ingressPorts.map((p) => `http://127.0.0.1:${p}`);
    await waitFor(async () => (await Promise.all(ingresses.map((u) => fetch(`${u}/readyz`)))).every((r) => r.status === 200), 15_000, 'both ingresses ready');

    // Kill the server that leads the INFERENCE stream: its services, its stream and consumer leaders all move.
    const scripts = await connectNode(a, nats.passwords, 'scripts', nats.hubUrls);
    const leaderName = (await (await jetstreamManager(scripts)).streams.info('INFERENCE')).cluster?.leader;
    const victim = nats.hubs.find((h) => h.name === leaderName)!;
    expect(victim).toBeDefined();

    // Event traffic besides inference: media events published as the media service does (msg ids, retries).
    const mediaNc = await connectNode(a, nats.passwords, 'media', nats.hubUrls);
    const media = new EventPublisher(mediaNc, new ReplyMux(mediaNc, inboxPrefixOf(mediaNc)));
    const mediaAcked: string[] = [];
    const mediaFailed: string[] = [];

    const results: Outcome[] = [];
    const models = ['fast', 'local', 'gpt-4.1-mini'];
    let killedAt = 0;
    let stop = false;
    let n = 0;
    const load = Array.from({ length: 6 }, async (_, w) => {
      while (!stop) {
        const i = n++;
        results.push(await chat(ingresses[i % 2]!, models[i % 3]!, i % 2 === 0, `deploy-${w}-${i}`));
      }
    });
    const events = (async () => {
      for (let i = 0; !stop; i++) {
        const source = `probe-${i}`;
        try {
          await media.publish('mediaServiceError', { source, kind: 'sonarr', reason: 'timeout', message: 'timeout after 5000 ms', at: new Date().toISOString(), since: new Date().toISOString() }, { msgId: `deploy-media-${i}` });
          mediaAcked.push(source);
        } catch (err) {
          mediaFailed.push(`${source}: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    await waitFor(() => results.length >= 40, 20_000, '40 requests before the kill');
    killedAt = Date.now();
    await victim.kill();
    await new Promise((r) => setTimeout(r, 5000));
    stop = true;
    await Promise.all([...load, events]);

    // Requests: everything ended, with an answer or a clear error; only what was in flight on the dead server failed.
    const failed = results.filter((r) => !r.complete);
    for (const f of failed) expect(f.error, JSON.stringify(f)).toBeTruthy();
    expect(Math.max(...results.map((r) => r.ms))).toBeLessThan(15_000);
    // Failures stay near the kill: what was in flight there, and what came while the ingress reconnected.
    expect(failed.every((f) => Math.abs(f.at - killedAt) < 5000), JSON.stringify(failed.filter((f) => Math.abs(f.at - killedAt) >= 5000).slice(0, 5))).toBe(true);
    expect(failed.length, JSON.stringify(failed.slice(0, 5))).toBeLessThan(results.length / 10);
    // No answer holds another attempt's content too: each streamed answer has the simulator's 10 tokens, once.
    const mixed = results.filter((r) => r.complete && r.stream && r.contentChunks !== 10);
    expect(mixed, 'a streamed answer with more or fewer chunks than the backend sent').toEqual([]);
    const afterKill = results.filter((r) => r.at > killedAt + 1500);
    expect(afterKill.length).toBeGreaterThan(20);
    expect(afterKill.filter((r) => r.complete).length).toBe(afterKill.length);

    // Media events: every acknowledged event is stored exactly once.
    expect(mediaFailed).toEqual([]);
    const mediaStored = (await readStream(scripts, 'MEDIA')).map((m) => m.data['source'] as string);
    expect(mediaStored.length).toBe(new Set(mediaStored).size);
    expect(new Set(mediaStored)).toEqual(new Set(mediaAcked));

    // Inference events: none stored twice (the msg id `<requestId>:<attempt>` dedupes a retried publish),
    // none lost for an answered request. A request whose attempt was cut by the dead server may have run
    // twice (its first worker finished while the router, cut off, tried again): two executions, two events,
    // one answer to the client.
    // Publishers still retrying (while a stream elects its new leader) finish within their deadline (15 s).
    const answered = results.filter((x) => x.complete).map((x) => x.id);
    let completed: Awaited<ReturnType<typeof readStream>> = [];
    await waitFor(async () => {
      completed = (await readStream(scripts, 'INFERENCE')).filter((m) => m.subject === 'inference.completed');
      const stored = new Set(completed.map((e) => e.data['requestId']));
      return answered.every((id) => stored.has(id));
    }, 20_000, 'the events of every answered request').catch(() => { /* the assertion below says which */ });
    const perAttempt = new Map<string, number>();
    const perId = new Map<string, number>();
    for (const e of completed) {
      const key = `${e.data['requestId']}:${e.data['attempts']}`;
      perAttempt.set(key, (perAttempt.get(key) ?? 0) + 1);
      perId.set(e.data['requestId'] as string, (perId.get(e.data['requestId'] as string) ?? 0) + 1);
    }
    expect([...perAttempt].filter(([, count]) => count > 1), 'an inference.completed stored twice').toEqual([]);
    const ranTwice = completed.filter((e) => perId.get(e.data['requestId'] as string)! > 1);
    for (const e of ranTwice.filter((x) => (x.data['attempts'] as number) > 1)) expect(e.data['routeReason']).toMatch(/backend_unavailable|timeout/);
    expect(new Set(ranTwice.map((e) => e.data['requestId'])).size).toBeLessThanOrEqual(8);
    const missing = results.filter((x) => x.complete && !perId.has(x.id)).map((r) => ({
      ...r, logs: stack.services.flatMap((p) => p.logs.filter((l) => JSON.stringify(l).includes(r.id)).map((l) => `${p.name}: ${JSON.stringify(l)}`)),
    }));
    expect(missing, 'an answered request without its inference.completed').toEqual([]);

    // Telemetry (its durable consumer moved to another server too) counts each stored event once.
    const telemetry = stack.services.find((p) => p.name === 'telemetry')!;
    let counted = 0;
    await waitFor(async () => {
      if (telemetry.proc.exitCode !== null) throw new Error(`telemetry exited (${telemetry.proc.exitCode}): ${telemetry.logs.slice(-8).map((l) => JSON.stringify(l)).join('\n')}\n${telemetry.stderr()}`);
      counted = sampleSum(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(), 'homelab_gateway_requests_total');
      return counted >= completed.length;
    }, 30_000, 'telemetry caught up').catch((err: Error) => {
      throw new Error(`${err.message}: counted ${counted} of ${completed.length}; telemetry's last lines:\n${telemetry.logs.slice(-10).map((l) => JSON.stringify(l)).join('\n')}`);
    });
    // Compare with the stream as it is now: a publisher still retrying may have stored one more since.
    let stored = completed.length;
    let exposition = '';
    await waitFor(async () => {
      stored = (await readStream(scripts, 'INFERENCE')).filter((m) => m.subject === 'inference.completed').length;
      exposition = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return sampleSum(exposition, 'homelab_gateway_requests_total') === stored;
    }, 10_000, 'telemetry equal to the stream').catch(() => { /* the assertion below says by how much */ });
    expect(sampleSum(exposition, 'homelab_gateway_requests_total')).toBe(stored);

    await mediaNc.close();
    await scripts.close();
  }, 120_000);
});
