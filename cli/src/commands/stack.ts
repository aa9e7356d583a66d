import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type LabConfig } from '@homelab/config';
import { Exit, type Command, type Io } from '../command.ts';
import type { Demo } from '../demo.ts';
import { REPO_ROOT, demoHome, demoRoot, labHome, type StackHome } from '../home.ts';
import { StackStartError, startStack } from '../stack.ts';

export const start: Command = {
  name: 'start',
  summary: 'the lab: NATS (embedded unless NATS_URL is set) and every service, supervised',
  usage: `usage: homelab start        (npm start)

Runs the lab as config/lab.yaml (or HOMELAB_CONFIG) describes it: NATS (embedded on NATS_HOST:NATS_PORT,
127.0.0.1:4222, unless NATS_URL names one) and every service as its own supervised process, one
combined log. Data in .data/ (HOMELAB_DATA_DIR), NATS secrets in .secrets/ (HOMELAB_SECRETS_DIR):
never the demo's. Ctrl-C stops everything.
Exit code: 0 stopped; 1 NATS cannot start; 78 a service the lab needs cannot start (its one line says
what to do, e.g. PORT=8081 npm start); 64 wrong command line.
`,
  options: {},
  run: (input) => runStack('lab', input),
};

export const demo: Command = {
  name: 'demo',
  summary: 'the whole lab on loopback, simulated: AI backends, media node, qBittorrent  [--reset]',
  usage: `usage: homelab demo [--reset]        (npm run demo)

The same stack as npm start, on loopback, with simulators standing in for the whole lab: vLLM,
Ollama, OpenAI and Anthropic; Sonarr, Radarr, Prowlarr, Jellyfin and Immich with a small library
that changes (downloads progress, complete and import; a stream starts and stops); qBittorrent
(the real qbittorrent-nox when installed, else a simulator of its WebUI API). Its data, NATS secrets,
storage paths and qBittorrent profile are in .demo/ (HOMELAB_DEMO_DIR): never the lab's .data/ and
.secrets/. It prints what to try once the API is ready.
  --reset   delete the demo's folder (its keys, history, health records) and exit
Ports: config/demo.yaml's (8080, NATS 4222, metrics 9464, simulators 18000…); HOMELAB_DEMO_PORTS=free
picks free ones instead. HOMELAB_AUTH=keys runs it with API keys (it makes one and prints it).
Exit code: 0 stopped (or reset); 1 it cannot start; 78 a service it needs cannot start; 64 wrong command line.
`,
  options: { reset: { type: 'boolean' } },
  async run(input) {
    if (input.values['reset']) return resetDemo(input);
    return runStack('demo', input);
  },
};

function resetDemo({ env, out, err }: Io): number {
  const root = demoRoot(env);
  if (!existsSync(root)) { out.write(`nothing to reset: ${root} does not exist\n`); return Exit.ok; }
  if (root === REPO_ROOT || root === join(REPO_ROOT, '.data') || root === join(REPO_ROOT, '.secrets')) {
    err.write(`homelab demo --reset: refusing to delete ${root}\n`);
    return Exit.usage;
  }
  rmSync(root, { recursive: true, force: true });
  out.write(`demo reset: deleted ${root} (its data, NATS secrets, storage and qBittorrent profile); the lab's .data/ and .secrets/ are untouched\n`);
  return Exit.ok;
}

async function runStack(kind: 'lab' | 'demo', { env: parentEnv, out, err }: Io): Promise<number> {
  const env = { ...parentEnv };
  const home: StackHome = kind === 'demo' ? demoHome(env) : labHome(env);
  let world: Demo | undefined;
  if (kind === 'demo') {
    try {
      // The demo's world (simulators, its traffic) is loaded only for the demo: `homelab start` stays small.
      const { prepareDemo } = await import('../demo.ts');
      world = await prepareDemo(env, out);
    } catch (e) {
      err.write(`demo: ${(e as Error).message}\n`);
      return Exit.problem;
    }
    Object.assign(env, world.stackEnv);
  }
  const serviceEnv = world?.serviceEnv ?? {};
  let stack: Awaited<ReturnType<typeof startStack>>;
  try {
    stack = await startStack({ env, out, home, serviceEnv, runCommand: kind === 'demo' ? 'npm run demo' : 'npm start' });
  } catch (e) {
    await world?.stop();
    if (e instanceof StackStartError) { err.write(`${e.message}\n`); return Exit.problem; }
    throw e;
  }
  const stopping = new AbortController();
  const signalled = new Promise<'signal'>((resolve) => {
    process.once('SIGINT', () => resolve('signal'));
    process.once('SIGTERM', () => resolve('signal'));
  });
  void announceWhenReady(kind, { ...env, ...serviceEnv }, stack.natsUrl, world, out, stopping.signal);
  const ended = await Promise.race([signalled, stack.failed]);
  stopping.abort();
  let code: number = Exit.ok;
  if (ended !== 'signal') {
    err.write(`\n${kind === 'demo' ? 'the demo' : 'the lab'} cannot run: ${ended.service} cannot start: ${ended.reason}\nstopping everything…\n`);
    code = Exit.cannotStart;
  } else out.write('stopping…\n');
  await world?.stopTraffic();
  await stack.stop();
  await world?.stop();
  return code;
}

/** Waits for the ingress's /readyz (200 once it is connected and a router answers), then says so once. */
async function announceWhenReady(kind: 'lab' | 'demo', env: NodeJS.ProcessEnv, natsUrl: string, world: Demo | undefined, out: NodeJS.WritableStream, signal: AbortSignal): Promise<void> {
  let config: LabConfig;
  try {
    config = loadConfig({ env });
  } catch {
    return; // the services say what is wrong with it
  }
  const host = config.gateway.host === '0.0.0.0' || config.gateway.host === '::' ? '127.0.0.1' : config.gateway.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${config.gateway.port}`;
  while (!signal.aborted) {
    try {
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.any([signal, AbortSignal.timeout(2000)]) });
      await res.body?.cancel();
      if (res.status === 200) break;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 250));
  }
  if (signal.aborted) return;
  if (kind === 'lab') {
    out.write(`\nThe lab is ready: ${url}/v1 (OpenAI-compatible), ${url}/status; NATS at ${natsUrl}. Try: homelab status\n\n`);
    return;
  }
  const key = await world!.afterReady(natsUrl).catch((e: unknown) => { out.write(`demo: ${(e as Error).message}\n`); return undefined; });
  if (signal.aborted) return;
  const { readyBlock } = await import('../demo.ts');
  out.write(readyBlock({ url, natsUrl, key, metricsUrl: world!.metricsUrl, auth: config.auth.mode, env }));
}

