import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect, createInbox } from '@nats-io/transport-node';
import { REPO_ROOT, freePort, startTestStack, type ServiceProcess, type TestNatsServer } from '@homelab/testing';
import { chat, type Outcome } from './helpers/deploy-stack.ts';
import { waitFor } from './telemetry-kit.ts';
import { dieWithParent } from '@homelab/simulators';

/*
 * Rolling restarts under load, as systemd or k3s does them: every service runs two replicas; each
 * replica in turn gets SIGTERM, drains (stops taking work, finishes what it holds, exits 0) and is
 * started again, while clients keep sending requests through a real Caddy balancing the two ingress
 * replicas with deploy/compose/ai-gateway/Caddyfile. Not one request may fail.
 */

const CADDYFILE = join(REPO_ROOT, 'deploy', 'compose', 'ai-gateway', 'Caddyfile');
const DRAIN_DELAY_MS = 1000;

function findCaddy(): string {
  for (const candidate of [process.env['CADDY_BIN'], '/usr/bin/caddy', 'caddy']) {
    if (candidate && spawnSync(candidate, ['version']).status === 0) return candidate;
  }
  throw new Error('caddy is not installed: apt-get install -y caddy (Debian 12: 2.6.2)');
}

async function startCaddy(env: Record<string, string>): Promise<{ proc: ChildProcess; log: () => string; [Symbol.asyncDispose](): Promise<void> }> {
  const home = mkdtempSync(join(tmpdir(), 'homelab-caddy-'));
  const proc = spawn(...dieWithParent(findCaddy(), ['run', '--config', CADDYFILE, '--adapter', 'caddyfile']), {
    env: { PATH: process.env['PATH'] ?? '', HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config'), CADDY_ADMIN: 'off', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout!.on('data', (b: Buffer) => { log += b.toString(); });
  proc.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
  return {
    proc, log: () => log,
    async [Symbol.asyncDispose]() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** Waits until `count` copies of a service answer `$SRV.PING.<name>`. */
async function waitForReplicas(nats: TestNatsServer, name: string, count: number): Promise<void> {
  const nc = await connect({ servers: nats.url, user: 'scripts', pass: nats.passwords.scripts });
  try {
    await waitFor(async () => {
      const inbox = createInbox();
      const sub = nc.subscribe(inbox);
      nc.publish(`$SRV.PING.${name}`, undefined, { reply: inbox });
      let seen = 0;
      const timer = setTimeout(() => sub.unsubscribe(), 300);
      for await (const _ of sub) if (++seen >= count) break;
      clearTimeout(timer);
      sub.unsubscribe();
      return seen >= count;
    }, 15_000, `${count} replicas of ${name}`);
  } finally {
    await nc.close();
  }
}

describe('rolling restart under load (deploy/compose/ai-gateway/Caddyfile in front)', () => {
  it('each replica of every service restarted in turn: zero failed requests; a draining ingress turns unready first', async () => {
    await using stack = await startTestStack({ tokens: 10, tokenIntervalMs: 10, services: ['worker-vllm', 'worker-ollama', 'worker-cloud', 'router'] });
    const ingressPorts = [await freePort(), await freePort()] as const;
    const ingressEnv = (i: 0 | 1) => ({ PORT: String(ingressPorts[i]), DRAIN_DELAY_MS: String(DRAIN_DELAY_MS) });
    const current: Record<string, ServiceProcess[]> = {
      'worker-vllm': [stack.services[0]!, await stack.startService('worker-vllm')],
      'worker-ollama': [stack.services[1]!, await stack.startService('worker-ollama')],
      'worker-cloud': [stack.services[2]!, await stack.startService('worker-cloud')],
      router: [stack.services[3]!, await stack.startService('router')],
      ingress: [await stack.startService('ingress', ingressEnv(0)), await stack.startService('ingress', ingressEnv(1))],
    };
    const ingressUrl = (i: number) => `http://127.0.0.1:${ingressPorts[i]}`;
    await waitFor(async () => (await Promise.all([0, 1].map((i) => fetch(`${ingressUrl(i)}/readyz`)))).every((r) => r.status === 200), 15_000, 'both ingresses ready');

    const port = await freePort();
    await using caddy = await startCaddy({ LISTEN: `http://127.0.0.1:${port}`, INGRESS_1: `127.0.0.1:${ingressPorts[0]}`, INGRESS_2: `127.0.0.1:${ingressPorts[1]}`, HEALTH_INTERVAL: '200ms' });
    const front = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await chat(front, 'fast', false, 'warmup')).complete, 15_000, `Caddy in front of the ingresses:\n${caddy.log()}`);

    const results: Outcome[] = [];
    const models = ['fast', 'local', 'gpt-4.1-mini', 'claude-haiku-4-5'];
    let stop = false;
    let n = 0;
    const load = Array.from({ length: 6 }, async (_, w) => {
      while (!stop) {
        const i = n++;
        results.push(await chat(front, models[i % models.length]!, i % 2 === 0, `roll-${w}-${i}`));
      }
    });

    const drainedUnready: boolean[] = [];
    for (const folder of ['worker-vllm', 'worker-ollama', 'worker-cloud', 'router', 'ingress']) {
      for (const slot of [0, 1] as const) {
        const old = current[folder]![slot]!;
        const before = results.length;
        await waitFor(() => results.length >= before + 6, 10_000, `traffic before restarting ${folder}`);
        const exited = old.stop('SIGTERM');
        if (folder === 'ingress') {
          // Unready as soon as the signal is handled, while it still finishes what it holds.
          let status = 0;
          for (let i = 0; i < 20 && status !== 503; i++) {
            status = await fetch(`${ingressUrl(slot)}/readyz`).then((r) => r.status, () => 0);
            if (status !== 503) await new Promise((r) => setTimeout(r, 25));
          }
          drainedUnready.push(status === 503);
        }
        expect(await exited, `${folder} exit code after SIGTERM`).toBe(0);
        current[folder]![slot] = await stack.startService(folder, folder === 'ingress' ? ingressEnv(slot) : {});
        // Ready means this replica answers, not just any of its name (the other one always did): as a
        // readiness probe per replica does, wait for both before the next one goes.
        await waitForReplicas(stack.nats, folder, 2);
        if (folder === 'ingress') await waitFor(async () => (await fetch(`${ingressUrl(slot)}/readyz`)).status === 200, 10_000, 'the new ingress ready');
      }
    }
    const afterRoll = results.length;
    await waitFor(() => results.length >= afterRoll + 12, 10_000, 'traffic after the roll');
    stop = true;
    await Promise.all(load);

    expect(drainedUnready).toEqual([true, true]);
    expect(results.length).toBeGreaterThan(80);
    const failed = results.filter((r) => !r.complete);
    expect(failed, JSON.stringify(failed.slice(0, 5))).toEqual([]);
    // Every streamed answer whole, with its 10 tokens once.
    expect(results.filter((r) => r.stream && r.contentChunks !== 10)).toEqual([]);
  }, 120_000);
});
