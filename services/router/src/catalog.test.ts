import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError, respondError, respondJson, type Msg } from '@homelab/bus';
import { parseConfig } from '@homelab/config';
import { createLogger } from '@homelab/logging';
import { connectAs, startNatsServer, startServiceProcess, waitForService, type TestNatsServer } from '@homelab/testing';
import { ModelCatalog } from './catalog.ts';

// Readiness after discovery: the router answers $SRV.PING only once every backend was asked for
// its models. Workers here are plain NATS subscribers that hold their answer until the test lets go.

let nats: TestNatsServer;
let dir: string;
beforeAll(async () => {
  nats = await startNatsServer();
  dir = mkdtempSync(join(tmpdir(), 'router-catalog-'));
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

const log = createLogger({ service: 'router-test', level: 'silent' });

function labYaml(extra = ''): string {
  return `
nats: { url: "${nats.url}" }
nodes:
  ai-node:
    address: 127.0.0.1
    services:
      vllm: { kind: vllm, port: 1 }
      ollama: { kind: ollama, port: 2 }
inference:
  vllm: { service: ai-node/vllm }
  ollama: { service: ai-node/ollama }
  discoveryIntervalMs: 60000
${extra}`;
}

/** A worker that answers `worker.<provider>.models` only when released; `asked` resolves at the first question. */
async function heldWorker(user: 'worker-vllm' | 'worker-ollama', provider: string, answer: (msg: Msg) => void) {
  const nc = await connectAs(nats, user);
  let release!: () => void;
  const released = new Promise<void>((r) => { release = r; });
  let asked!: () => void;
  const firstAsk = new Promise<void>((r) => { asked = r; });
  nc.subscribe(`worker.${provider}.models`, {
    queue: provider,
    callback: (_e, msg) => { asked(); void released.then(() => answer(msg)); },
  });
  await nc.flush();
  return { nc, release, asked: firstAsk };
}

const models = (provider: string, ids: string[]) => (msg: Msg): void => respondJson(msg, { provider, models: ids.map((id) => ({ id })) });
const down = (msg: Msg): void => respondError(msg, new GatewayError('backend_unavailable', 'connect ECONNREFUSED 127.0.0.1:2'));

describe('the first discovery round', () => {
  it('waits for a slow worker; a backend that is down does not hold it back', async () => {
    const vllm = await heldWorker('worker-vllm', 'vllm', models('vllm', ['Qwen/Qwen2.5-7B-Instruct']));
    const ollama = await heldWorker('worker-ollama', 'ollama', down);
    ollama.release();
    await using nc = await connectAs(nats, 'router');
    const catalog = new ModelCatalog(nc, parseConfig(labYaml(), 'lab.yaml'), log);
    let done = false;
    void catalog.firstRound().then(() => { done = true; });
    catalog.start();
    try {
      await Promise.all([vllm.asked, ollama.asked]);
      await nc.flush();
      await new Promise((r) => setTimeout(r, 300));
      expect(done).toBe(false);
      vllm.release();
      await catalog.firstRound();
      expect(catalog.served('vllm')?.map((m) => m.id)).toEqual(['Qwen/Qwen2.5-7B-Instruct']);
      expect(catalog.served('ollama')).toBeUndefined();
    } finally {
      catalog.stop();
      await vllm.nc.close();
      await ollama.nc.close();
    }
  });

  it('a backend without any worker holds it back for firstDiscoveryWaitMs, then counts as asked', async () => {
    await using nc = await connectAs(nats, 'router');
    const config = parseConfig(labYaml('  firstDiscoveryWaitMs: 1500'), 'lab.yaml');
    expect(config.firstDiscoveryWaitMs).toBe(1500);
    const catalog = new ModelCatalog(nc, config, log);
    let done = false;
    void catalog.firstRound().then(() => { done = true; });
    catalog.start();
    try {
      await new Promise((r) => setTimeout(r, 500));
      expect(done).toBe(false);
      await catalog.firstRound();
      expect(catalog.served('vllm')).toBeUndefined();
    } finally {
      catalog.stop();
    }
  });
});

describe('the router process', () => {
  it('answers $SRV.PING only once its slow worker answered the first discovery', { timeout: 60_000 }, async () => {
    const vllm = await heldWorker('worker-vllm', 'vllm', models('vllm', ['Qwen/Qwen2.5-7B-Instruct']));
    const ollama = await heldWorker('worker-ollama', 'ollama', models('ollama', ['llama3.2:3b']));
    ollama.release();
    const config = join(dir, 'lab.yaml');
    writeFileSync(config, labYaml('  firstDiscoveryWaitMs: 60000'));
    await using router = await startServiceProcess('router', { nats, waitReady: false, env: { HOMELAB_CONFIG: config, HOMELAB_AUTH: 'none' } });
    try {
      await vllm.asked;
      await using scripts = await connectAs(nats, 'scripts');
      // Asked but not answered: the router is not there for anyone yet.
      for (let i = 0; i < 5; i++) {
        await expect(scripts.request('$SRV.PING.router', undefined, { timeout: 200 })).rejects.toThrow();
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(router.logs.some((l) => l['msg'] === 'started')).toBe(false);
      vllm.release();
      await waitForService(nats, 'router');
      const list = (await scripts.request('inference.models', undefined, { timeout: 2000 })).json<{ data: { id: string }[] }>();
      // Ready means the models are known: no model_not_found for a model that is there.
      expect(list.data.map((m) => m.id)).toEqual(expect.arrayContaining(['Qwen/Qwen2.5-7B-Instruct', 'llama3.2:3b']));
    } finally {
      await vllm.nc.close();
      await ollama.nc.close();
    }
  });
});
