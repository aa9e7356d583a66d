import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '@homelab/testing';
import { dieWithParent } from '@homelab/simulators';

/*
 * The `homelab` command run as a person runs it (node cli/src/main.ts …), as its own process: the
 * stack runner (`start`, `demo`) and the commands talking to it.
 */

export const CLI = join(REPO_ROOT, 'cli', 'src', 'main.ts');

export interface CliProcess {
  proc: ChildProcess;
  output(): string;
  /** Resolves with the output once `pattern` appears in it; rejects if the process ends first or after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<string>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** SIGINT (Ctrl-C), then the exit code; SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
}

/**
 * The nats CLI contexts the commands write (`homelab setup`, the demo) go under a folder of this test
 * process (XDG_CONFIG_HOME), never the real home directory. Only made when a command writes one; a
 * test that reads the context passes its own XDG_CONFIG_HOME (and removes it).
 */
const testConfigHome = join(tmpdir(), `homelab-cli-config-${process.pid}`);
process.once('exit', () => { rmSync(testConfigHome, { recursive: true, force: true }); });

/** A clean environment: only what the command needs, plus `env`. */
export function cliEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', XDG_CONFIG_HOME: testConfigHome, LANG: 'C.UTF-8', ...env };
}

export function startCli(args: string[], env: Record<string, string>): CliProcess {
  const proc = spawn(...dieWithParent(process.execPath, [CLI, ...args]), { cwd: REPO_ROOT, env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const waiters = new Set<() => void>();
  const onData = (b: Buffer): void => { output += b.toString(); for (const w of waiters) w(); };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => { for (const w of waiters) w(); resolve(code); }));
  return {
    proc, exited,
    output: () => output,
    waitFor(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (pattern.test(output)) { done(); resolve(output); } else if (proc.exitCode !== null || proc.signalCode !== null) { done(); reject(new Error(`homelab ${args.join(' ')} exited (${proc.exitCode ?? proc.signalCode}) before ${pattern}:\n${output.slice(-4000)}`)); }
        };
        const timer = setTimeout(() => { done(); reject(new Error(`no ${pattern} from homelab ${args.join(' ')} within ${timeoutMs} ms:\n${output.slice(-4000)}`)); }, timeoutMs);
        const done = (): void => { waiters.delete(check); clearTimeout(timer); };
        waiters.add(check);
        check();
      });
    },
    async stop(graceMs = 30_000) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGINT');
      const kill = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(kill);
      return code;
    },
  };
}

/** Runs a `homelab` command to its end: exit code, stdout and stderr. */
export async function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(...dieWithParent(process.execPath, [CLI, ...args]), { cwd: REPO_ROOT, env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
  proc.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
  const code = await new Promise<number | null>((resolve) => proc.once('close', (c) => resolve(c)));
  return { code, stdout, stderr };
}

export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  })));
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** A loopback lab config with no backends or media: enough for the stack to run and serve its API. */
export function minimalLabYaml(o: { gatewayPort: number; metricsPort: number; mediaPath: string }): string {
  return `
lab: { name: test-lab }
gateway: { port: ${o.gatewayPort}, host: 127.0.0.1 }
nodes:
  ai-gateway:
    address: 127.0.0.1
    services:
      gateway: { kind: gateway, port: ${o.gatewayPort} }
media:
  paths: [${JSON.stringify(o.mediaPath)}]
  webhooks: { enabled: false }
health: { intervalMs: 5000, discovery: { intervalMs: 2000 } }
telemetry: { metricsPort: ${o.metricsPort}, metricsHost: 127.0.0.1 }
`;
}
