import { createServer } from 'node:net';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HealthSnapshot } from '@homelab/bus';
import { connectAs, startNatsServer, type TestNatsServer } from '@homelab/testing';
import { COMMAND_NAMES, runCli } from './main.ts';

// The `homelab` command as a person meets it: help for every command, a one-line error and the
// usage for a wrong command line (64), 2 when the lab cannot be reached, 1 when it reports a
// problem, the NATS settings `npm start` uses.

function io(env: NodeJS.ProcessEnv = {}) {
  let out = '';
  let err = '';
  return {
    io: {
      out: new Writable({ write(c, _e, cb) { out += String(c); cb(); } }),
      err: new Writable({ write(c, _e, cb) { err += String(c); cb(); } }),
      env: { PATH: process.env['PATH'], ...env },
    },
    out: () => out,
    err: () => err,
  };
}

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address() as { port: number }; srv.close(() => resolve(port)); });
  });
}

describe('homelab: the command line', () => {
  it('lists its commands with --help (0); without a command it is a usage error (64)', async () => {
    const help = io();
    expect(await runCli(['--help'], help.io)).toBe(0);
    for (const name of COMMAND_NAMES) expect(help.out()).toContain(`  ${name}`);
    expect(help.out()).toMatch(/Exit codes: 0 all well; 1 the lab reports a problem.*\n2 the lab cannot be reached.*64 wrong command line/s);
    const none = io();
    expect(await runCli([], none.io)).toBe(64);
    const unknown = io();
    expect(await runCli(['frobnicate'], unknown.io)).toBe(64);
    expect(unknown.err().split('\n')[0]).toBe("homelab: unknown command 'frobnicate'");
  });

  it.each([...COMMAND_NAMES])('%s --help prints its usage and exits 0, without touching the lab', async (name) => {
    const r = io({ NATS_PORT: String(await closedPort()) });
    expect(await runCli([name, '--help'], r.io)).toBe(0);
    // The usage of the command named, not of another one loaded from the same module.
    expect(r.out()).toMatch(new RegExp(`^usage: homelab ${name} `));
    expect(r.out()).toMatch(/Exit code/);
    expect(r.err()).toBe('');
  });

  it.each([...COMMAND_NAMES])('%s with an unknown option: one line saying so, then the usage; 64', async (name) => {
    const r = io();
    expect(await runCli([name, '--no-such-option'], r.io)).toBe(64);
    const [first, second] = r.err().split('\n');
    expect(first).toBe(`homelab ${name}: Unknown option '--no-such-option'`);
    expect(second).toBe('');
    expect(r.err()).toContain(`usage: homelab ${name}`);
    expect(r.err()).not.toMatch(/ERR_PARSE_ARGS|at .*\.ts:\d+/);
  });

  it('chat without a model or a prompt, keys without a verb: usage errors (64)', async () => {
    for (const argv of [['chat', 'hello'], ['chat', '-m', 'fast'], ['keys'], ['keys', 'create'], ['keys', 'list', 'extra'], ['keys', 'rotate', 'x']]) {
      const r = io();
      expect(await runCli(argv, r.io), argv.join(' ')).toBe(64);
      expect(r.err()).toMatch(/^homelab (chat|keys): /);
    }
  });
});

describe('homelab: reaching the lab', () => {
  let nats: TestNatsServer;
  beforeAll(async () => { nats = await startNatsServer(); });
  afterAll(async () => { await nats?.[Symbol.asyncDispose](); });

  it('NATS down: 2, with where it looked and what to check', async () => {
    const port = await closedPort();
    for (const argv of [['status'], ['media'], ['models'], ['chat', '-m', 'fast', 'hi']]) {
      const r = io({ NATS_PORT: String(port) });
      expect(await runCli(argv, r.io), argv[0]).toBe(2);
      expect(r.err()).toContain(`cannot reach the lab's NATS at nats://127.0.0.1:${port}`);
      expect(r.err()).toMatch(/npm start, or npm run demo/);
    }
  });

  it('honours NATS_PORT (and NATS_HOST) as npm start does, NATS_URL first', async () => {
    await using health = await connectAs(nats, 'health');
    const snapshot: HealthSnapshot = { lab: 'x', generatedAt: new Date().toISOString(), startedAt: new Date().toISOString(), overall: 'up', counts: { up: 0, degraded: 0, down: 0, unknown: 0 }, targets: [] };
    health.subscribe('health.status', { queue: 'health', callback: (_e, m) => { m.respond(new TextEncoder().encode(JSON.stringify(snapshot))); } });
    await health.flush();
    const byPort = io({ NATS_PORT: String(nats.port), NATS_HOST: '127.0.0.1', HOMELAB_SECRETS_DIR: dirname(nats.passwordsFile) });
    expect(await runCli(['status', '--json'], byPort.io)).toBe(0);
    expect(JSON.parse(byPort.out())).toEqual(snapshot);
    const byUrl = io({ NATS_URL: nats.url, NATS_PORT: String(await closedPort()), HOMELAB_SECRETS_DIR: dirname(nats.passwordsFile) });
    expect(await runCli(['status'], byUrl.io)).toBe(0);
  });

  it('nothing answers: 2; the lab answers with a problem: 1; --json on every listing', async () => {
    const env = { NATS_URL: nats.url, HOMELAB_SECRETS_DIR: dirname(nats.passwordsFile) };
    const silent = io(env);
    expect(await runCli(['models'], silent.io)).toBe(2);
    expect(silent.err()).toMatch(/the router did not answer inference.models/);
    const status = io(env);
    expect(await runCli(['status', '--timeout', '300'], status.io)).toBe(2);

    await using router = await connectAs(nats, 'router');
    router.subscribe('inference.models', { queue: 'router', callback: (_e, m) => { m.respond(new TextEncoder().encode(JSON.stringify({ object: 'list', data: [{ id: 'fast', object: 'model', created: 1, owned_by: 'ollama', alias_of: ['ollama/llama3.2:3b'] }] }))); } });
    await router.flush();
    const json = io(env);
    expect(await runCli(['models', '--json'], json.io)).toBe(0);
    expect(JSON.parse(json.out())).toMatchObject({ object: 'list', data: [{ id: 'fast' }] });
    const table = io(env);
    expect(await runCli(['models'], table.io)).toBe(0);
    expect(table.out()).toMatch(/^MODEL +BACKEND +NOTE\nfast +ollama +alias: ollama\/llama3.2:3b\n$/);

    await using health = await connectAs(nats, 'health');
    const down: HealthSnapshot = {
      lab: 'x', generatedAt: new Date().toISOString(), startedAt: new Date().toISOString(), overall: 'down', counts: { up: 0, degraded: 0, down: 1, unknown: 0 },
      targets: [{ key: 'ai-node.vllm', node: 'ai-node', service: 'vllm', kind: 'vllm', probe: 'http', target: 'http://127.0.0.1:1/health', state: 'down', since: new Date().toISOString(), lastCheck: null, latencyMs: null, error: 'connection refused', probed: true, streaks: { fail: 3, ok: 0, notOk: 3, notFail: 0 } }],
    };
    health.subscribe('health.status', { queue: 'health', callback: (_e, m) => { m.respond(new TextEncoder().encode(JSON.stringify(down))); } });
    await health.flush();
    const problem = io(env);
    expect(await runCli(['status'], problem.io)).toBe(1);
    expect(problem.out()).toContain('connection refused');
  });

  it('keys: as admin with the password the lab\'s secrets hold; with auth off it says the keys do nothing', async () => {
    await using router = await connectAs(nats, 'router');
    router.subscribe('keys.list', { queue: 'router', callback: (_e, m) => { m.respond(new TextEncoder().encode(JSON.stringify({ auth: 'none', keys: [] }))); } });
    await router.flush();
    const wrong = io({ NATS_URL: nats.url, NATS_PASSWORD: 'not-the-admin-password' });
    expect(await runCli(['keys', 'list'], wrong.io)).toBe(2);
    expect(wrong.err()).toMatch(/refused the admin identity/);
    const r = io({ NATS_URL: nats.url, NATS_PASSWORD: nats.passwords.admin });
    expect(await runCli(['keys', 'list', '--json'], r.io)).toBe(0);
    expect(JSON.parse(r.out())).toEqual([]);
    expect(r.err()).toMatch(/^note: API keys are off in this lab/);
  });
});
