import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NATS_USERS, inboxPrefixFor, type NatsUser } from '@homelab/bus';
import { connectAs, connectionErrors, startNatsServer, type TestNatsServer } from '@homelab/testing';

// The project's nats.conf on a real nats-server: the router, the inference workers and telemetry
// answer without allow_responses (nats.conf, REPLIES), so each must be allowed the inbox of every
// identity that may ask it, and as many answers as a stream has. A publish the server refuses is
// dropped (the publisher only gets an asynchronous error), so each answer is awaited where it should arrive.

const RESPONDERS: NatsUser[] = ['router', 'worker-vllm', 'worker-ollama', 'worker-cloud', 'telemetry'];
const enc = new TextEncoder();
let nats: TestNatsServer;
beforeAll(async () => { nats = await startNatsServer(); });
afterAll(async () => { await nats?.[Symbol.asyncDispose](); });

describe('answers without allow_responses', () => {
  it('the router, the inference workers and telemetry reach every identity\'s inbox, several times (a stream)', async () => {
    const requesters = await Promise.all(NATS_USERS.map((user) => connectAs(nats, user)));
    const responders = await Promise.all(RESPONDERS.map((user) => connectAs(nats, user)));
    const refused = responders.map((nc) => connectionErrors(nc));
    try {
      const received = new Map<string, number>();
      for (const [i, nc] of requesters.entries()) {
        // The subject a request of this identity carries as its reply: its own prefix, a random token.
        nc.subscribe(`${inboxPrefixFor(NATS_USERS[i])}.replies-test.>`, { callback: (_err, msg) => { received.set(msg.subject, (received.get(msg.subject) ?? 0) + 1); } });
        await nc.flush();
      }
      for (const [r, nc] of responders.entries()) {
        for (const requester of NATS_USERS) {
          const inbox = `${inboxPrefixFor(requester)}.replies-test.${RESPONDERS[r]}`;
          for (let piece = 0; piece < 5; piece++) nc.publish(inbox, enc.encode(String(piece)));
        }
        await nc.flush();
      }
      const expected = new Map(RESPONDERS.flatMap((responder) => NATS_USERS.map((requester) => [`${inboxPrefixFor(requester)}.replies-test.${responder}`, 5] as const)));
      await expect.poll(() => received.size, { timeout: 5000 }).toBe(expected.size);
      expect(received).toEqual(expected);
      expect(refused.flatMap((errors, i) => errors.map((e) => `${RESPONDERS[i]}: ${e}`))).toEqual([]);
    } finally {
      await Promise.all([...requesters, ...responders].map((nc) => nc.close()));
    }
  });

  it('they still cannot publish the events of another service', async () => {
    await using watcher = await connectAs(nats, 'scripts');
    const seen: string[] = [];
    watcher.subscribe('health.>', { callback: (_err, msg) => { seen.push(msg.subject); } });
    watcher.subscribe('media.>', { callback: (_err, msg) => { seen.push(msg.subject); } });
    await watcher.flush();
    for (const user of RESPONDERS) {
      await using nc = await connectAs(nats, user);
      nc.publish('health.ai-node.vllm', enc.encode('{}'));
      nc.publish('media.download.imported', enc.encode('{}'));
      await nc.flush();
    }
    // A message published after them by an identity allowed to arrives; theirs never do.
    await using health = await connectAs(nats, 'health');
    health.publish('health.marker', enc.encode('{}'));
    await health.flush();
    await expect.poll(() => seen).toContain('health.marker');
    expect(seen).toEqual(['health.marker']);
  });
});
