import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { REPO_ROOT, type TestNatsServer } from './nats-server.ts';
import { inboxPrefixFor, type NatsUser } from '@homelab/bus';
import { dieWithParent } from '@homelab/simulators';

export interface ServiceProcess {
  readonly name: string;
  readonly proc: ChildProcess;
  /** Every JSON log line the process wrote so far, parsed. */
  readonly logs: Record<string, unknown>[];
  /** Raw stderr, for diagnosing a crash. */
  readonly stderr: () => string;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Waits for a log line matching `predicate`. */
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface StartServiceOptions {
  nats: TestNatsServer;
  /** The NATS user it connects as; defaults to the service name. */
  user?: NatsUser;
  env?: Record<string, string>;
  /** Wait until it answers `$SRV.PING.<name>` (default true). */
  waitReady?: boolean;
  /** The `$SRV` name to wait for, when not the folder name. */
  serviceName?: string;
}

/** Starts `services/<folder>/src/main.ts` as its own process, as `npm start` would. */
export async function startServiceProcess(folder: string, options: StartServiceOptions): Promise<ServiceProcess> {
  const user = options.user ?? (folder as NatsUser);
  const proc = spawn(...dieWithParent(process.execPath, [join(REPO_ROOT, 'services', folder, 'src', 'main.ts')]), {
    cwd: REPO_ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', LOG_LEVEL: 'info', ...options.nats.envFor(user), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  let buffered = '';
  proc.stdout!.on('data', (b: Buffer) => {
    buffered += b.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try { logs.push(JSON.parse(line)); } catch { logs.push({ raw: line }); }
    }
    for (const w of waiters) w();
  });
  proc.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));

  const handle: ServiceProcess = {
    name: folder,
    proc,
    logs,
    stderr: () => stderr,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
    waitForLog(predicate, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = logs.find(predicate);
          if (hit) { waiters.delete(check); clearTimeout(t); resolve(hit); }
        };
        const t = setTimeout(() => { waiters.delete(check); reject(new Error(`${folder}: no matching log line within ${timeoutMs} ms; last lines:\n${logs.slice(-5).map((l) => JSON.stringify(l)).join('\n')}\n${stderr}`)); }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async [Symbol.asyncDispose]() {
      await handle.stop();
    },
  };
  if (options.waitReady ?? true) {
    try {
      await waitForService(options.nats, options.serviceName ?? folder, exited);
      // Another replica may have answered that PING: wait for this process's own start-up to finish.
      await handle.waitForLog((l) => l['msg'] === 'started', 15_000);
    } catch (err) {
      await handle.stop('SIGKILL');
      throw new Error(`${folder} did not become ready: ${(err as Error).message}\nstdout:\n${logs.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${stderr}`);
    }
  }
  return handle;
}

/** Polls `$SRV.PING.<name>` until a service of that name answers. */
export async function waitForService(nats: TestNatsServer, name: string, exited?: Promise<unknown>, timeoutMs = 15_000): Promise<void> {
  const nc = await connect({ servers: nats.url, user: 'scripts', pass: nats.passwords.scripts });
  let dead = false;
  void exited?.then(() => { dead = true; });
  try {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (dead) throw new Error('process exited');
      try {
        await nc.request(`$SRV.PING.${name}`, undefined, { timeout: 250 });
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(`no $SRV.PING.${name} answer within ${timeoutMs} ms`);
  } finally {
    await nc.close();
  }
}

/**
 * The errors the server reports on a connection from now on (a refused publish or subscription
 * arrives asynchronously, as a status): the array fills as they come.
 */
export function connectionErrors(nc: NatsConnection): string[] {
  const errors: string[] = [];
  void (async () => { for await (const s of nc.status()) if (s.type === 'error') errors.push(s.error.message); })();
  return errors;
}

/** A NATS connection as the given user, closed on dispose. */
export async function connectAs(nats: TestNatsServer, user: NatsUser): Promise<NatsConnection & AsyncDisposable> {
  const nc = await connect({ servers: nats.url, user, pass: nats.passwords[user], inboxPrefix: inboxPrefixFor(user) });
  return Object.assign(nc, { [Symbol.asyncDispose]: () => nc.close() });
}
