import { it, expect } from 'vitest';
import { connectAs, startNatsServer } from '@homelab/testing';
import { ensureStreams } from '@homelab/bus';
it('perm', async () => {
  await using nats = await startNatsServer();
  await using nc = await connectAs(nats, 'worker-vllm');
  const t0 = Date.now();
  const err = await ensureStreams(nc, { streams: [{ name: 'HEALTH', subjects: ['health.*.*'], description: 'x', maxAgeDays: 1 }] }).then(() => null, (e) => e);
  console.log('ERR', Date.now() - t0, err?.message, err?.name, err?.cause?.name, err?.cause?.constructor?.name);
  expect(1).toBe(1);
});
