import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readNatsSecrets } from '@homelab/bus';
import { dieWithParent } from '@homelab/simulators';
import { REPO_ROOT, freePort } from '@homelab/testing';

// The stack with a loopback-only config: nothing here sends traffic beyond 127.0.0.1.
let dir: string;
let config: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'homelab-start-'));
  config = join(dir, 'lab.yaml');
  writeFileSync(config, `
gateway: { host: 127.0.0.1 }
nodes:
  ai-node:
    address: 127.0.0.1
    services:
      vllm: { kind: vllm, port: 1 }
      ollama: { kind: ollama, port: 1 }
inference:
  vllm: { service: ai-node/vllm }
  ollama: { service: ai-node/ollama }
media: { paths: [${JSON.stringify(dir)}] }
`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function startCommand(env: Record<string, string>): { proc: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const proc = spawn(...dieWithParent(process.execPath, [join(REPO_ROOT, 'cli', 'src', 'main.ts'), 'start']), {
    cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', HOMELAB_CONFIG: config, HOMELAB_DATA_DIR: join(dir, 'data'), HOMELAB_SECRETS_DIR: join(dir, 'secrets'), ...env },
  });
  let output = '';
  proc.stdout!.on('data', (b: Buffer) => { output += b.toString(); });
  proc.stderr!.on('data', (b: Buffer) => { output += b.toString(); });
  return { proc, output: () => output, exited: new Promise((r) => proc.once('exit', (code) => r(code))) };
}

/** As a script would: the `scripts` user with the password npm start generated; retried while NATS starts. */
async function connectAsScripts(natsPort: number): Promise<NatsConnection | undefined> {
  for (let i = 0; i < 100; i++) {
    try {
      return await connect({ servers: `nats://127.0.0.1:${natsPort}`, user: 'scripts', pass: readNatsSecrets(join(dir, 'secrets', 'nats-passwords.conf')).scripts });
    } catch { await new Promise((r) => setTimeout(r, 100)); }
  }
  return undefined;
}

/**
 * The names of the services answering $SRV.PING, sorted: rounds of half a second until `count` have
 * answered (30 s at most), then `extraRounds` more.
 */
async function servicesAnsweringPing(nc: NatsConnection, count: number, extraRounds = 0): Promise<string[]> {
  const seen = new Set<string>();
  const inbox = '_INBOX.stack-test-ping';
  // Before any service subscribes, the server answers with an empty no-responders status: skip it.
  const sub = nc.subscribe(inbox, { callback: (_e, m) => { if (m.data.length > 0) seen.add(m.json<{ name: string }>().name); } });
  const round = async (): Promise<void> => {
    nc.publish('$SRV.PING', undefined, { reply: inbox });
    await new Promise((r) => setTimeout(r, 500));
  };
  for (let i = 0; i < 60 && seen.size < count; i++) await round();
  for (let i = 0; i < extraRounds; i++) await round();
  sub.unsubscribe();
  return [...seen].sort();
}

describe('npm start', () => {
  // `separate` (the default): one process per service; `shared` (a small VM): one process for all.
  it.each(['separate', 'shared'])('HOMELAB_PROCESSES=%s brings up embedded NATS and every service, each answering $SRV.PING, and stops cleanly', async (mode) => {
    const natsPort = await freePort();
    const httpPort = await freePort();
    const stack = startCommand({ NATS_PORT: String(natsPort), PORT: String(httpPort), HOMELAB_PROCESSES: mode });
    const expected = readdirSync(join(REPO_ROOT, 'services')).filter((s) => existsSync(join(REPO_ROOT, 'services', s, 'src', 'main.ts')));
    try {
      const nc = await connectAsScripts(natsPort);
      expect(nc, stack.output()).toBeDefined();
      const seen = await servicesAnsweringPing(nc!, expected.length);
      await nc!.close();
      expect(seen, stack.output()).toEqual(expected.sort());
      const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
      expect(health.status).toBe(200);
    } finally {
      stack.proc.kill('SIGTERM');
    }
    expect(await stack.exited, stack.output()).toBe(0);
    // Every service logged its own clean shutdown, on one combined log with its name on each line.
    for (const name of expected) expect(stack.output()).toMatch(new RegExp(`${name} +INFO  shutting down`));
    if (mode === 'shared') expect(stack.output()).toContain(`started ${expected.length} services in one process`);
  }, 60_000);

  it('HOMELAB_PROCESSES=shared: a service that cannot start is dropped and the others run on; the process\'s own lines carry its name', async () => {
    const natsPort = await freePort();
    const httpPort = await freePort();
    // The metrics port is held: telemetry cannot listen, a failure a restart cannot fix.
    const held: Server = createServer();
    const metricsPort = await new Promise<number>((resolve) => held.listen(0, '127.0.0.1', () => resolve((held.address() as { port: number }).port)));
    const stack = startCommand({ NATS_PORT: String(natsPort), PORT: String(httpPort), METRICS_PORT: String(metricsPort), METRICS_HOST: '127.0.0.1', HOMELAB_PROCESSES: 'shared' });
    const expected = readdirSync(join(REPO_ROOT, 'services')).filter((s) => s !== 'telemetry' && existsSync(join(REPO_ROOT, 'services', s, 'src', 'main.ts')));
    try {
      const nc = await connectAsScripts(natsPort);
      expect(nc, stack.output()).toBeDefined();
      // One more round once all the others answered: telemetry must not be among them.
      const seen = await servicesAnsweringPing(nc!, expected.length, 1);
      await nc!.close();
      expect(seen, stack.output()).toEqual(expected.sort());
      expect((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status).toBe(200);
    } finally {
      stack.proc.kill('SIGTERM');
    }
    expect(await stack.exited, stack.output()).toBe(0);
    held.close();
    const out = stack.output();
    expect(out).toMatch(new RegExp(`telemetry +FATAL port ${metricsPort} is already in use on 127.0.0.1, so /metrics cannot listen there`));
    expect(out).toMatch(/services +WARN  telemetry cannot start: the lab runs on without it/);
    expect(out).not.toMatch(/services exited|cannot start and will not be restarted/);
    // Signals belong to the process: logged once, under its name, not under the first service's.
    expect(out.match(/INFO  signal received/g), out).toHaveLength(1);
    expect(out).toMatch(/services +INFO  signal received/);
    for (const name of expected) expect(out).toMatch(new RegExp(`${name} +INFO  shutting down`));
    expect(out).not.toMatch(/telemetry +INFO  shutting down/);
  }, 60_000);

  it('with NATS_PORT taken: a clear message and a non-zero exit', async () => {
    const server: Server = createServer();
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    try {
      const stack = startCommand({ NATS_PORT: String(port) });
      expect(await stack.exited).toBe(1);
      expect(stack.output()).toContain(`NATS_PORT ${port} is already in use`);
      expect(stack.output()).toContain(`NATS_PORT=${port + 1} npm start`);
      expect(stack.output()).toContain(`NATS_URL=nats://127.0.0.1:${port} npm start`);
    } finally {
      server.close();
    }
  });

  it('an invalid config: the services exit naming the file and field', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'nodes: {}\ngateway: { port: "eighty" }\n');
    const { execFile } = await import('node:child_process');
    const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
      execFile(process.execPath, [join(REPO_ROOT, 'services', 'router', 'src', 'main.ts')], { env: { ...process.env, HOMELAB_CONFIG: bad, NATS_URL: 'nats://127.0.0.1:1' } }, (err, stdout, stderr) => {
        resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, out: stdout + stderr });
      });
    });
    // 78: a restart cannot fix it, so the supervisor does not try (test/start-failures.test.ts).
    expect(result.code).toBe(78);
    expect(result.out).toContain(`${bad}: gateway.port:`);
  });
});
