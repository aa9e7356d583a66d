import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNatsSecrets, writeNatsSecrets, type NatsUser } from '@homelab/bus';
import { dieWithParent } from '@homelab/simulators';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const PROJECT_NATS_CONF = join(REPO_ROOT, 'nats.conf');

export interface TestNatsServer {
  /** `nats://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
  /** Passwords of the project's users, for connecting as a given service. */
  readonly passwords: Record<NatsUser, string>;
  /** The file they are in (`<dir>/nats-passwords.conf`), as the lab's `.secrets/` holds it: for `HOMELAB_SECRETS_DIR`. */
  readonly passwordsFile: string;
  /** Environment for a service process connecting as `user`. */
  envFor(user: NatsUser): Record<string, string>;
  /** What nats-server printed (its log on stderr), since it was first started. */
  log(): string;
  /** Stops the server, keeping its JetStream store, and starts it again on the same port. */
  restart(options?: { downMs?: number }): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** bcrypt's lowest cost: the same hashes as the lab's, cheap to check at the tests' many connections. */
export const TEST_BCRYPT_COST = 4;

export function findNatsServer(): string | undefined {
  for (const candidate of [process.env['NATS_SERVER_BIN'], 'nats-server', '/usr/sbin/nats-server', '/usr/bin/nats-server']) {
    if (!candidate) continue;
    const r = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return candidate;
  }
  return undefined;
}

/**
 * A real nats-server with the project's nats.conf (users, permissions, JetStream), on a random
 * loopback port with a temporary store. `await using nats = await startNatsServer()`.
 * Where no binary is installed but a Docker engine is, it runs the official image through testcontainers.
 */
export async function startNatsServer(options: { config?: string } = {}): Promise<TestNatsServer> {
  const existing = process.env['HOMELAB_TEST_NATS_URL'];
  if (existing) return useExistingServer(existing);
  const bin = findNatsServer();
  if (!bin) return startNatsContainer(options);
  const dir = mkdtempSync(join(tmpdir(), 'homelab-nats-'));
  const conf = join(dir, 'nats.conf');
  copyFileSync(options.config ?? PROJECT_NATS_CONF, conf);
  // Bcrypt hashes for the server as in the lab, at the lowest cost: the server checks one at every connection.
  const passwordsFile = join(dir, '.secrets', 'nats-passwords.conf');
  const passwords = writeNatsSecrets(passwordsFile, { cost: TEST_BCRYPT_COST });
  let port = 0;
  let child: ChildProcess | undefined;
  let serverLog = '';

  const start = async (): Promise<void> => {
    // Port -1 asks the server for a free port; we read it from its log and keep it for restarts.
    const proc = spawn(...dieWithParent(bin, ['-c', conf, '-a', '127.0.0.1', '-p', String(port || -1), '-sd', join(dir, 'js')]), { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    port = await new Promise<number>((resolve, reject) => {
      let log = '';
      const onData = (b: Buffer): void => {
        log += b.toString();
        serverLog += b.toString();
        const m = /Listening for client connections on [^\s]*:(\d+)/.exec(log);
        if (m && /Server is ready/.test(log)) { proc.stderr?.off('data', onData); resolve(Number(m[1])); }
      };
      proc.stderr?.on('data', onData);
      proc.once('exit', (code) => reject(new Error(`nats-server exited with ${code}:\n${log}`)));
      setTimeout(() => reject(new Error(`nats-server did not start:\n${log}`)), 10_000).unref();
    });
    proc.stderr?.on('data', (b: Buffer) => { serverLog += b.toString(); });
  };
  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    get url() { return `nats://127.0.0.1:${port}`; },
    get port() { return port; },
    passwords,
    passwordsFile,
    log: () => serverLog,
    envFor: (user) => ({ NATS_URL: `nats://127.0.0.1:${port}`, NATS_USER: user, NATS_PASSWORD: passwords[user] }),
    async restart({ downMs = 0 } = {}) {
      await stop();
      if (downMs) await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
    stop,
    start,
    async [Symbol.asyncDispose]() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startNatsContainer(options: { config?: string }): Promise<TestNatsServer> {
  // Only reached on machines without a nats-server binary; needs a Docker engine.
  const { GenericContainer, Wait } = await import('testcontainers');
  const dir = mkdtempSync(join(tmpdir(), 'homelab-nats-'));
  copyFileSync(options.config ?? PROJECT_NATS_CONF, join(dir, 'nats.conf'));
  const passwordsFile = join(dir, '.secrets', 'nats-passwords.conf');
  const passwords = writeNatsSecrets(passwordsFile, { cost: TEST_BCRYPT_COST });
  const container = await new GenericContainer('nats:2.10-alpine')
    .withBindMounts([{ source: dir, target: '/etc/homelab' }])
    .withCommand(['-c', '/etc/homelab/nats.conf', '-sd', '/data'])
    .withExposedPorts(4222)
    .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
    .start();
  const port = container.getMappedPort(4222);
  const url = `nats://127.0.0.1:${port}`;
  return {
    url, port, passwords, passwordsFile,
    log: () => '',
    envFor: (user) => ({ NATS_URL: url, NATS_USER: user, NATS_PASSWORD: passwords[user] }),
    async restart() { await container.restart(); },
    async stop() { await container.stop(); },
    async start() { throw new Error('a stopped container cannot be started again; use restart()'); },
    async [Symbol.asyncDispose]() { await container.stop(); rmSync(dir, { recursive: true, force: true }); },
  };
}

/**
 * `HOMELAB_TEST_NATS_URL` points the tests at a server already running with the project's nats.conf
 * (e.g. the one `npm start` runs); passwords come from the repo's .secrets. Tests that restart
 * the server cannot run against it and say so.
 */
function useExistingServer(url: string): TestNatsServer {
  const passwordsFile = join(REPO_ROOT, '.secrets', 'nats-passwords.conf');
  const passwords = readNatsSecrets(passwordsFile);
  const port = Number(new URL(url).port) || 4222;
  const unsupported = async (): Promise<void> => { throw new Error('HOMELAB_TEST_NATS_URL: this test needs to stop and start its own nats-server'); };
  return {
    url, port, passwords, passwordsFile,
    log: () => '',
    envFor: (user) => ({ NATS_URL: url, NATS_USER: user, NATS_PASSWORD: passwords[user] }),
    restart: unsupported, stop: unsupported, start: unsupported,
    async [Symbol.asyncDispose]() {},
  };
}
