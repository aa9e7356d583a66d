import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAs, connectionErrors, freePort, REPO_ROOT, startTestStack, type TestStack } from '@homelab/testing';

const run = promisify(execFile);
let stack: TestStack;
let second: string;
beforeAll(async () => {
  stack = await startTestStack({
    auth: true,
    inferenceYaml: '  aliases:\n    fast: [ollama/llama3.2:3b]\n    smart: [vllm/*, ollama/qwen2.5:32b, anthropic/claude-haiku-4-5]\n    cloudy: [anthropic/claude-haiku-4-5, ollama/llama3.2:3b]',
    extraYaml: 'routing:\n  policy: ordered',
  });
  const port = await freePort();
  await stack.startService('ingress', { PORT: String(port) });
  second = `http://127.0.0.1:${port}`;
  // The first ingress already answers $SRV.PING.ingress: wait for this one's port.
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(`${second}/healthz`)).ok) break; } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
}, 60_000);
afterAll(async () => { await stack?.[Symbol.asyncDispose](); });

async function admin(subject: string, body?: unknown): Promise<{ status: string | undefined; json: Record<string, unknown> }> {
  await using nc = await connectAs(stack.nats, 'admin');
  const reply = await nc.request(subject, body === undefined ? undefined : JSON.stringify(body), { timeout: 5000 });
  return { status: reply.headers?.get('Nats-Service-Error-Code'), json: reply.json() };
}
async function createKey(body: Record<string, unknown>): Promise<string> {
  const r = await admin('keys.create', body);
  expect(r.status).toBeUndefined();
  return r.json['key'] as string;
}
const chat = (base: string, key: string | undefined, model: string, extra: Record<string, string> = {}) => fetch(`${base}/v1/chat/completions`, {
  method: 'POST', headers: { 'content-type': 'application/json', ...(key && { authorization: `Bearer ${key}` }), ...extra },
  body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hi' }] }),
});
/** A key made on one replica is usable on both within moments (each watches the bucket). */
async function waitUsable(key: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const [a, b] = await Promise.all([stack.ingressUrl, second].map((u) => fetch(`${u}/v1/models`, { headers: { authorization: `Bearer ${key}` } })));
    if (a!.status === 200 && b!.status === 200) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('key never became usable');
}

describe('API keys at the edge', () => {
  it('refuses missing, malformed and unknown keys with 401 in OpenAI\'s shape, on both replicas', async () => {
    for (const base of [stack.ingressUrl, second]) {
      for (const key of [undefined, 'not-a-key', 'hlk_' + 'A'.repeat(43)]) {
        const res = await chat(base, key, 'fast');
        expect(res.status).toBe(401);
        expect(await res.json()).toMatchObject({ error: { code: 'invalid_api_key', type: 'invalid_request_error' } });
      }
    }
    // Health endpoints stay open.
    expect((await fetch(`${second}/healthz`)).status).toBe(200);
  });

  it('a key works with Bearer or x-api-key, on both replicas', async () => {
    const key = await createKey({ name: 'laptop' });
    expect(key).toMatch(/^hlk_[\w-]{43}$/);
    await waitUsable(key);
    expect((await chat(stack.ingressUrl, key, 'fast')).status).toBe(200);
    const viaHeader = await fetch(`${second}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: JSON.stringify({ model: 'fast', messages: [{ role: 'user', content: 'Hi' }] }) });
    expect(viaHeader.status).toBe(200);
  });

  it('scopes: allowed models, allowed backends, local-only; /v1/models shows only what the key may use', async () => {
    const onlyFast = await createKey({ name: 'kids-tablet', models: ['fast'] });
    const ollamaOnly = await createKey({ name: 'ollama-only', backends: ['ollama'] });
    const local = await createKey({ name: 'private', localOnly: true });
    await waitUsable(onlyFast); await waitUsable(ollamaOnly); await waitUsable(local);

    const refused = await chat(stack.ingressUrl, onlyFast, 'smart');
    expect(refused.status).toBe(403);
    expect((await refused.json() as { error: { message: string } }).error.message).toBe("key 'kids-tablet' may not use the model 'smart'");
    const models = await (await fetch(`${second}/v1/models`, { headers: { authorization: `Bearer ${onlyFast}` } })).json() as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(['fast']);

    const viaOllama = await chat(stack.ingressUrl, ollamaOnly, 'smart');
    expect(viaOllama.headers.get('x-homelab-backend')).toBe('ollama');
    expect(viaOllama.headers.get('x-homelab-route-reason')).toBe('alias:smart > vllm not allowed for key > anthropic not allowed for key > ollama');

    const before = stack.sims.anthropic.requests.length;
    const privateCloud = await chat(second, local, 'anthropic/claude-haiku-4-5');
    expect(privateCloud.status).toBe(503);
    expect(stack.sims.anthropic.requests.length).toBe(before);
    const localModels = await (await fetch(`${second}/v1/models`, { headers: { authorization: `Bearer ${local}` } })).json() as { data: { owned_by: string }[] };
    expect(localModels.data.length).toBeGreaterThan(0);
    expect(localModels.data.every((m) => m.owned_by === 'vllm' || m.owned_by === 'ollama')).toBe(true);
  });

  it('a rate limit holds across both replicas: 429 with Retry-After past it', async () => {
    const ingresses = stack.services.filter((s) => s.name === 'ingress');
    await Promise.all(ingresses.map((i) => i.waitForLog((l) => l['msg'] === 'ingress replicas changed: per-key rate limits are split among them' && l['replicas'] === 2, 15_000)));
    const key = await createKey({ name: 'script', rateLimitPerMinute: 4 });
    await waitUsable(key); // uses one request on each replica
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 3; i++) {
      for (const base of [stack.ingressUrl, second]) {
        const res = await chat(base, key, 'fast');
        statuses.push(res.status);
        if (res.status === 429) retryAfter ??= res.headers.get('retry-after');
      }
    }
    // 4 a minute over 2 replicas: 2 each, the 2 probes of waitUsable included.
    expect(statuses.filter((s) => s === 200)).toHaveLength(2);
    expect(statuses.filter((s) => s === 429)).toHaveLength(4);
    expect(Number(retryAfter)).toBeGreaterThan(0);
  });

  it('a daily cloud budget: past it cloud backends are skipped, local ones still serve; 429 naming the budget otherwise', async () => {
    const key = await createKey({ name: 'budgeted', dailyTokens: 10 });
    await waitUsable(key);
    const first = await chat(stack.ingressUrl, key, 'cloudy');
    expect(first.headers.get('x-homelab-backend')).toBe('anthropic');
    let next: Response | undefined;
    for (let i = 0; i < 40; i++) {
      next = await chat(second, key, 'cloudy');
      if (next.headers.get('x-homelab-backend') === 'ollama') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(next!.headers.get('x-homelab-route-reason')).toBe('alias:cloudy > anthropic skipped (daily budget of key budgeted reached) > ollama');
    const cloudOnly = await chat(stack.ingressUrl, key, 'claude-haiku-4-5');
    expect(cloudOnly.status).toBe(429);
    expect((await cloudOnly.json() as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'budget_exceeded', message: "the daily cloud token budget of key 'budgeted' (10 tokens) is used up; local models are still served if the key allows them",
    });
    const listed = await admin('keys.list');
    const entry = (listed.json['keys'] as { name: string; usage: { today: { cloudTokens: number } } }[]).find((k) => k.name === 'budgeted')!;
    expect(entry.usage.today.cloudTokens).toBeGreaterThanOrEqual(10);
  });

  it('revocation takes effect on every replica within a second; list never shows a key or its hash', async () => {
    const key = await createKey({ name: 'old-phone' });
    await waitUsable(key);
    expect((await admin('keys.revoke', { name: 'old-phone' })).status).toBeUndefined();
    const revokedAt = Date.now();
    let refusedEverywhere = false;
    while (!refusedEverywhere && Date.now() - revokedAt < 1000) {
      const codes = await Promise.all([stack.ingressUrl, second].map(async (u) => (await chat(u, key, 'fast')).status));
      refusedEverywhere = codes.every((c) => c === 401);
    }
    expect(refusedEverywhere).toBe(true);
    const listed = JSON.stringify((await admin('keys.list')).json);
    expect(listed).toContain('"old-phone"');
    expect(listed).toContain('revokedAt');
    expect(listed).not.toContain('hlk_');
    expect(listed).not.toContain('sha256');
    expect((await admin('keys.revoke', { name: 'old-phone' })).status).toBe('404');
    expect((await admin('keys.create', { name: 'bad name!' })).status).toBe('400');
  });

  it('scripts cannot manage keys or read the key and usage buckets', async () => {
    await using nc = await connectAs(stack.nats, 'scripts');
    const errors = connectionErrors(nc);
    nc.publish('keys.create', JSON.stringify({ name: 'sneaky' }));
    nc.publish('$JS.API.DIRECT.GET.KV_apikeys.$KV.apikeys.laptop', undefined);
    nc.publish('$JS.API.STREAM.MSG.GET.KV_usage', undefined);
    await nc.flush();
    await new Promise((r) => setTimeout(r, 200));
    expect(errors.join('\n')).toMatch(/Publish to "keys.create"/);
    expect(errors.join('\n')).toMatch(/Publish to "\$JS.API.DIRECT.GET.KV_apikeys/);
    expect(errors.join('\n')).toMatch(/Publish to "\$JS.API.STREAM.MSG.GET.KV_usage"/);
  });

  it('homelab keys create prints the key once on stdout, list prints no secret', async () => {
    const env = { ...process.env, NATS_URL: stack.nats.url, NATS_USER: 'admin', NATS_PASSWORD: stack.nats.passwords.admin };
    const cli = join(REPO_ROOT, 'cli', 'src', 'main.ts');
    const created = await run(process.execPath, [cli, 'keys', 'create', 'desktop', '--local-only', '--models', 'fast,smart'], { env });
    expect(created.stdout).toMatch(/^hlk_[\w-]{43}\n$/);
    expect(created.stderr).toContain("created key 'desktop'");
    const listed = await run(process.execPath, [cli, 'keys', 'list'], { env });
    expect(listed.stdout).toMatch(/desktop\s+active\s+local-only; models fast,smart/);
    expect(listed.stdout).not.toContain(created.stdout.trim());
  });
});
