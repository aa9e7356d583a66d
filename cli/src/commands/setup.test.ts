import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { readNatsSecrets } from '@homelab/bus';
import { connectAs, startNatsServer, type TestNatsServer } from '@homelab/testing';
import { runCli } from '../main.ts';

// `homelab setup`: the passwords, their hashes, and the nats CLI context `homelab` that lets
// `nats sub 'health.>'` in; in a temporary secrets folder and XDG_CONFIG_HOME, never the real ones.

let dir: string;
let nats: TestNatsServer;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'homelab-setup-'));
  nats = await startNatsServer();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

async function setup(env: NodeJS.ProcessEnv, args: string[] = []): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(['setup', ...args], {
    out: new Writable({ write(c, _e, cb) { out += String(c); cb(); } }),
    err: new Writable({ write(c, _e, cb) { err += String(c); cb(); } }),
    env: { PATH: process.env['PATH'], HOME: join(dir, 'home'), ...env },
  });
  return { code, out, err };
}

interface Context { url: string; user: string; password: string; description: string }
const readContext = (file: string): Context => JSON.parse(readFileSync(file, 'utf8')) as Context;

describe('homelab setup', () => {
  it('writes the passwords, then the context `homelab` (the lab\'s NATS as scripts) and selects it when none is', async () => {
    const secrets = join(dir, 'a', 'secrets');
    const xdg = join(dir, 'a', 'config');
    const r = await setup({ HOMELAB_SECRETS_DIR: secrets, XDG_CONFIG_HOME: xdg, NATS_PORT: '4333' });
    expect(r.code, r.err).toBe(0);
    const file = join(xdg, 'nats', 'context', 'homelab.json');
    expect(r.out).toContain(`wrote NATS passwords for every service to ${join(secrets, 'nats-passwords.conf')}`);
    expect(r.out).toContain(`wrote the nats CLI context 'homelab' to ${file} (mode 600): nats://127.0.0.1:4333 as user scripts; selected it (no context was selected)`);
    expect(readContext(file)).toMatchObject({ url: 'nats://127.0.0.1:4333', user: 'scripts', password: readNatsSecrets(join(secrets, 'nats-passwords.conf')).scripts });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(xdg, 'nats', 'context.txt'), 'utf8')).toBe('homelab');
    expect(r.out).not.toContain(readContext(file).password);
  });

  it('passwords already there: kept, the context written from them; another selected context stays selected', async () => {
    const xdg = join(dir, 'b', 'config');
    mkdirSync(join(xdg, 'nats'), { recursive: true });
    writeFileSync(join(xdg, 'nats', 'context.txt'), 'work');
    const r = await setup({ HOMELAB_SECRETS_DIR: dirname(nats.passwordsFile), XDG_CONFIG_HOME: xdg, NATS_URL: nats.url });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(`${nats.passwordsFile} exists`);
    expect(r.out).toContain(`left 'work' selected: use \`nats --context homelab sub 'health.>'\``);
    expect(readFileSync(join(xdg, 'nats', 'context.txt'), 'utf8')).toBe('work');

    // What the nats CLI does with the context, done with a plain NATS client: the lab's events arrive.
    const context = readContext(join(xdg, 'nats', 'context', 'homelab.json'));
    const nc = await connect({ servers: context.url, user: context.user, pass: context.password });
    try {
      const seen: string[] = [];
      nc.subscribe('health.>', { callback: (_e, m) => { seen.push(m.subject); } });
      await nc.flush();
      await using health = await connectAs(nats, 'health');
      health.publish('health.ai-node.vllm', new TextEncoder().encode('{}'));
      await health.flush();
      const deadline = Date.now() + 5000;
      while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(seen).toEqual(['health.ai-node.vllm']);
    } finally {
      await nc.close();
    }
  });

  it('--demo: the demo\'s secrets only; the demo writes its own context when it starts', async () => {
    const xdg = join(dir, 'c', 'config');
    const r = await setup({ HOMELAB_DEMO_DIR: join(dir, 'c', 'demo'), XDG_CONFIG_HOME: xdg }, ['--demo']);
    expect(r.code, r.err).toBe(0);
    expect(readNatsSecrets(join(dir, 'c', 'demo', 'secrets', 'nats-passwords.conf')).scripts).toMatch(/\S{20,}/);
    expect(r.out).not.toContain('context');
    expect(() => statSync(join(xdg, 'nats'))).toThrow();
  });
});
