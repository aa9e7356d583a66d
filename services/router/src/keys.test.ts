import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError, KeyRegistry, openKeyBuckets } from '@homelab/bus';
import { createLogger } from '@homelab/logging';
import { connectAs, startNatsServer, type TestNatsServer } from '@homelab/testing';
import { UsageBook, createKey, listKeys, revokeKey } from './keys.ts';

// With auth off the router does not follow the key bucket: a key made then would do nothing, and
// the `homelab keys` commands must say so rather than print a key that works nowhere.

let nats: TestNatsServer;
beforeAll(async () => { nats = await startNatsServer(); });
afterAll(async () => { await nats?.[Symbol.asyncDispose](); });

const log = createLogger({ service: 'router-test', level: 'silent' });

describe('keys.* with auth off and on', () => {
  it('off: create and revoke refuse and say why, list says keys are off', async () => {
    await using nc = await connectAs(nats, 'router');
    const { keys: kv } = await openKeyBuckets(nc, 1, true);
    const registry = new KeyRegistry();
    const refused = await createKey(kv, registry, { name: 'laptop' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(GatewayError);
    expect((refused as GatewayError).message).toMatch(/^API keys are off in this lab \(auth\.mode: none, or HOMELAB_AUTH=none\): a key made now would do nothing/);
    await expect(revokeKey(kv, registry, 'laptop')).rejects.toThrow(/API keys are off in this lab/);
    expect(listKeys(registry, new UsageBook())).toEqual({ auth: 'none', keys: [] });
    expect(await kv.get('laptop')).toBeNull();
  });

  it('on: a key is made, listed, and the list says keys are on', async () => {
    await using nc = await connectAs(nats, 'router');
    const { keys: kv } = await openKeyBuckets(nc, 1, true);
    const registry = new KeyRegistry();
    await registry.watch(kv, log);
    try {
      const made = await createKey(kv, registry, { name: 'phone' });
      expect(made.key).toMatch(/^hlk_/);
      await expect(createKey(kv, registry, { name: 'scripts' })).rejects.toThrow(/^'scripts' is the name of what scripts without a key may do/);
      const deadline = Date.now() + 5000;
      while (!registry.byName('phone') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const listed = listKeys(registry, new UsageBook());
      expect(listed.auth).toBe('keys');
      expect(listed.keys.map((k) => k['name'])).toEqual(['phone']);
    } finally {
      registry.stop();
    }
  });
});
