import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { NATS_USERS, ensureNatsSecrets, type NatsUser } from '@homelab/bus/credentials';
import { REPO_ROOT, natsServerConfig, type StackHome } from './home.ts';
import { Supervisor, type ProcessSpec } from './supervisor.ts';

export { REPO_ROOT } from './home.ts';

/** Every folder of services/ with a main.ts is a service the stack runs. */
export function discoverServices(root = REPO_ROOT): string[] {
  const dir = join(root, 'services');
  return readdirSync(dir).filter((name) => existsSync(join(dir, name, 'src', 'main.ts'))).sort(serviceOrder);
}

// Workers and the router before the ingress, so the edge is ready when it opens; the rest alphabetically.
const ORDER = ['health', 'media', 'telemetry', 'worker-vllm', 'worker-ollama', 'worker-cloud', 'router', 'ingress'];
function serviceOrder(a: string, b: string): number {
  const ia = ORDER.indexOf(a);
  const ib = ORDER.indexOf(b);
  return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
}

/** The generated NATS passwords (and their hashes for the server), created on first use (`homelab setup` does it explicitly). */
export function ensureSecrets(stackHome: StackHome, log: (line: string) => void): Record<NatsUser, string> {
  if (!existsSync(stackHome.passwordsFile)) log(`generated NATS passwords in ${stackHome.passwordsFile} and their bcrypt hashes in ${stackHome.hashesFile} (git-ignored)`);
  return ensureNatsSecrets(stackHome.passwordsFile);
}

/**
 * `HOMELAB_PROCESSES=shared`: every service in one Node process, for a gateway VM with little memory
 * (docs/performance.md measures both). Default `separate`: each service its own process.
 */
export function sharedProcess(env: NodeJS.ProcessEnv): boolean {
  const mode = env['HOMELAB_PROCESSES'] ?? 'separate';
  if (mode !== 'shared' && mode !== 'separate') throw new StackStartError(`HOMELAB_PROCESSES=${mode}: expected 'separate' (each service its own process) or 'shared' (one process for all)`);
  return mode === 'shared';
}

/**
 * The young generation of each service's heap, in MB per semi-space. V8's default grows it with the
 * heap limit, and a service keeps what it grew to under load; at 8 the stack's RSS after
 * bench/inference.ts is ~100 MB lower in one process and ~200 MB lower over separate ones, for ~8%
 * more CPU in the services on non-streamed requests (more frequent scavenges) and none measurable on
 * streams (docs/performance.md, "Memory (issue 12)"). `NODE_OPTIONS=--max-semi-space-size=0` restores V8's default.
 */
export const SEMI_SPACE_MB = 8;

/**
 * How Node runs the services:
 * - `NODE_OPTIONS` starts with `--max-semi-space-size` (SEMI_SPACE_MB); the caller's own
 *   NODE_OPTIONS come after it, so a value there wins.
 * - `NODE_COMPILE_CACHE` (unless set): Node's compile cache, the TypeScript sources with their types
 *   stripped and their bytecode, on disk. A service that finds its modules there never loads the type
 *   stripper (a WebAssembly compiler that stays in memory: ~25 MB RSS in every process) and starts
 *   faster. Node fills it at the first start after an install or an update and checks each entry
 *   against the file's content, so a stale one is never used. `NODE_DISABLE_COMPILE_CACHE=1` turns it off.
 */
export function nodeSettings(env: NodeJS.ProcessEnv): { NODE_OPTIONS: string; NODE_COMPILE_CACHE: string } {
  return {
    NODE_OPTIONS: [`--max-semi-space-size=${SEMI_SPACE_MB}`, env['NODE_OPTIONS']].filter(Boolean).join(' '),
    NODE_COMPILE_CACHE: env['NODE_COMPILE_CACHE'] || join(REPO_ROOT, 'node_modules', '.cache', 'homelab', 'compile-cache'),
  };
}

/** The one process of HOMELAB_PROCESSES=shared: its name in the supervisor's log, and on the lines that are the process's own. */
export const SHARED_PROCESS_NAME = 'services';

/** Without these the lab cannot serve anything: when one cannot start, the stack stops (exit 78). */
export const REQUIRED_SERVICES = ['nats', 'router', 'ingress'];

export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

export function findBinary(names: string[]): string | undefined {
  for (const name of names) {
    if (spawnSync(name, ['--version'], { stdio: 'ignore' }).status === 0) return name;
  }
  return undefined;
}

export interface StackOptions {
  env: NodeJS.ProcessEnv;
  out: NodeJS.WritableStream;
  /** Where the JetStream store and the NATS secrets are: the lab's or the demo's, never both. */
  home: StackHome;
  /** Extra environment for every service (the demo's config). */
  serviceEnv?: Record<string, string>;
  /** How the person started it (`npm start`, `npm run demo`): services name it in the one line that says what to do. */
  runCommand?: string;
}

export class StackStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StackStartError';
  }
}

export interface RunningStack {
  natsUrl: string;
  services: string[];
  /** Resolves when a required service cannot start (a port in use, an invalid config): the stack cannot serve. */
  failed: Promise<{ service: string; reason: string }>;
  stop(): Promise<void>;
}

/**
 * `npm start`: NATS (embedded unless NATS_URL is set) and every service as its own supervised
 * process. Resolves once everything is launched.
 */
export async function startStack({ env, out, home, serviceEnv = {}, runCommand = 'npm start' }: StackOptions): Promise<RunningStack> {
  let fail!: (f: { service: string; reason: string }) => void;
  const failed = new Promise<{ service: string; reason: string }>((resolve) => { fail = resolve; });
  const supervisor = new Supervisor({
    out, rawJson: env['LOG_FORMAT'] === 'json',
    onCannotStart: (service, reason, required) => {
      if (required) fail({ service, reason });
      else supervisor.print('stack', `the lab runs on without ${service}`);
    },
  });
  const say = (line: string): void => supervisor.print('stack', line);
  say(`${home.kind === 'demo' ? 'demo' : 'lab'} data in ${home.dataDir}, NATS secrets in ${home.secretsDir}`);
  const passwords = ensureSecrets(home, say);
  let natsUrl = env['NATS_URL'];

  if (!natsUrl) {
    const port = Number(env['NATS_PORT'] || 4222);
    const host = env['NATS_HOST'] || '127.0.0.1';
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new StackStartError(`NATS_PORT=${env['NATS_PORT']} is not a port number`);
    if (!(await portIsFree(port, host))) {
      throw new StackStartError(
        `NATS_PORT ${port} is already in use on ${host}, so the embedded NATS server cannot start.\n` +
        `  - start on another port:           NATS_PORT=${port + 1} ${runCommand}\n` +
        `  - or use the NATS already running:  NATS_URL=nats://${host}:${port} ${runCommand}`,
      );
    }
    const store = join(home.dataDir, 'nats');
    mkdirSync(store, { recursive: true });
    const conf = natsServerConfig(home);
    // NATS_MONITOR_PORT: nats-server's monitoring endpoint (/varz, /connz), e.g. for bench/inference.ts;
    // NATS_PROFILE_PORT: its Go profiler (/debug/pprof/), for bench/inference.ts --nats-profile.
    const monitor = env['NATS_MONITOR_PORT'] ? ['-m', env['NATS_MONITOR_PORT']] : [];
    const profiler = env['NATS_PROFILE_PORT'] ? ['--profile', env['NATS_PROFILE_PORT']] : [];
    const natsArgs = ['-c', conf, '-a', host, '-p', String(port), '-sd', store, ...monitor, ...profiler];
    const bin = findBinary([env['NATS_SERVER_BIN'] ?? 'nats-server', '/usr/sbin/nats-server']);
    if (bin) {
      supervisor.add({ name: 'nats', command: bin, args: natsArgs, env: { ...env }, jsonLogs: false, required: true, detached: true });
    } else if (findBinary(['docker'])) {
      // No binary but a Docker engine: the official image with the same config and this home's hashes.
      supervisor.add({
        name: 'nats', command: 'docker', jsonLogs: false, env: { ...env }, required: true,
        args: ['run', '--rm', '--name', `homelab-nats-${port}`, '-p', `${host}:${port}:4222`, '-v', `${REPO_ROOT}nats.conf:/etc/nats/nats.conf:ro`, '-v', `${home.hashesFile}:/etc/nats/.secrets/nats-hashes.conf:ro`, '-v', `${store}:/data`, 'nats:2.10-alpine', '-c', '/etc/nats/nats.conf', '-sd', '/data'],
      });
    } else {
      throw new StackStartError('no nats-server found (install Debian\'s nats-server package, or Docker), and NATS_URL is not set');
    }
    natsUrl = `nats://${host}:${port}`;
    await waitForPort(port, host, 15_000);
    say(`embedded NATS on ${natsUrl} (store ${store})`);
  } else {
    say(`using NATS at ${natsUrl}`);
  }

  const services = discoverServices();
  const common = { ...env, ...serviceEnv, NATS_URL: natsUrl, HOMELAB_RUN_COMMAND: runCommand, ...nodeSettings(env) };
  if (sharedProcess(env)) {
    // One process for every service (docs/deploy.md): each still connects as its own NATS user.
    supervisor.add({
      name: SHARED_PROCESS_NAME, command: process.execPath, args: [join(REPO_ROOT, 'cli', 'src', 'shared-process.ts'), ...services], jsonLogs: true, required: true,
      env: { ...common, NATS_PASSWORDS_FILE: home.passwordsFile },
    });
    say(`started ${services.length} services in one process (HOMELAB_PROCESSES=shared): ${services.join(', ')}`);
    return { stop: () => supervisor.stop(15_000, 'nats'), natsUrl, services, failed };
  }
  for (const name of services) {
    const user = (NATS_USERS as readonly string[]).includes(name) ? name as NatsUser : undefined;
    const spec: ProcessSpec = {
      name, command: process.execPath, args: [join(REPO_ROOT, 'services', name, 'src', 'main.ts')], jsonLogs: true, required: REQUIRED_SERVICES.includes(name),
      env: { ...common, ...(user && { NATS_USER: user, NATS_PASSWORD: passwords[user] }) },
    };
    supervisor.add(spec);
  }
  say(`started ${services.length} services: ${services.join(', ')}`);
  return { stop: () => supervisor.stop(15_000, 'nats'), natsUrl, services, failed };
}

async function waitForPort(port: number, host: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await canConnect(port, host)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new StackStartError(`NATS did not start listening on ${host}:${port} within ${timeoutMs} ms`);
}

function canConnect(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}
