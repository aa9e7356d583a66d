// The stack a benchmark measures: `homelab start` pinned to CPU 0, with its own config, data and
// secrets in a temporary folder (never the lab's `.data/` and `.secrets/`), nats-server's monitoring
// port open for /varz and /jsz. Shared by bench/inference.ts and bench/images.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@homelab/testing';
import { killTree, processTree } from './processes.ts';

const ROOT = new URL('../', import.meta.url).pathname;

export interface BenchStack {
  proc: ChildProcess;
  /** `http://127.0.0.1:PORT` of the ingress. */
  url: string;
  natsUrl: string;
  /** nats-server's monitoring endpoint (/varz, /jsz). */
  monitorUrl: string;
  /** Every line the stack printed (JSON logs). */
  log: string[];
  /** The temporary folder: config, data, secrets. */
  dir: string;
  /** The NATS passwords the stack generated (`<dir>/secrets/nats-passwords.conf`), e.g. to connect as scripts. */
  passwordsFile: string;
  /** The stack's processes once it was ready (the supervisor, nats-server, every service). */
  pids: number[];
}

export interface BenchStackOptions {
  /** The lab's YAML, given the ingress's port and the folder (for `media.paths`). */
  config: (httpPort: number, dir: string) => string;
  /** More environment for `homelab start` (HOMELAB_PROCESSES, NODE_OPTIONS for --cpu-prof…). */
  env?: Record<string, string>;
  /** Ready for the benchmark, beyond `/readyz` (e.g. the router lists the simulator's model). */
  isReady: (url: string) => Promise<boolean>;
  timeoutMs: number;
}

export async function startBenchStack(options: BenchStackOptions): Promise<BenchStack> {
  const dir = mkdtempSync(join(tmpdir(), 'homelab-bench-'));
  const [httpPort, natsPort, monitorPort] = [await freePort(), await freePort(), await freePort()];
  const config = join(dir, 'lab.yaml');
  writeFileSync(config, options.config(httpPort, dir));
  const secretsDir = join(dir, 'secrets');
  const env = {
    ...process.env, HOMELAB_CONFIG: config, HOMELAB_DATA_DIR: join(dir, 'data'), HOMELAB_SECRETS_DIR: secretsDir,
    NATS_PORT: String(natsPort), NATS_MONITOR_PORT: String(monitorPort), LOG_FORMAT: 'json', ...options.env,
  };
  const proc = spawn('taskset', ['-c', '0', process.execPath, join(ROOT, 'cli/src/main.ts'), 'start'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  const keep = (b: Buffer): void => { for (const line of b.toString().split('\n')) if (line) log.push(line); };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const stack: BenchStack = { proc, url: `http://127.0.0.1:${httpPort}`, natsUrl: `nats://127.0.0.1:${natsPort}`, monitorUrl: `http://127.0.0.1:${monitorPort}`, log, dir, passwordsFile: join(secretsDir, 'nats-passwords.conf'), pids: [] };
  const deadline = Date.now() + options.timeoutMs;
  while (Date.now() < deadline) {
    const ready = await fetch(`${stack.url}/readyz`).then((r) => r.ok, () => false);
    if (ready && await options.isReady(stack.url)) {
      stack.pids = processTree(proc.pid!);
      return stack;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await stopBenchStack(stack);
  throw new Error(`the stack did not become ready:\n${log.slice(-20).join('\n')}`);
}

/** SIGINT to the supervisor, then whatever it left behind (it should leave nothing); the folder goes too. */
export async function stopBenchStack(stack: BenchStack): Promise<void> {
  const pids = stack.pids.length > 0 ? stack.pids : processTree(stack.proc.pid!);
  if (stack.proc.exitCode === null && stack.proc.signalCode === null) {
    const exited = new Promise((r) => stack.proc.once('exit', r));
    stack.proc.kill('SIGINT');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
  }
  await killTree([...pids, ...processTree(stack.proc.pid!)]);
  rmSync(stack.dir, { recursive: true, force: true });
}
