import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { parse, stringify } from 'yaml';
import { inboxPrefixFor, readNatsSecrets } from '@homelab/bus';
import {
  startAnthropicSimulator, startArrSimulator, startComfyUISimulator, startImmichSimulator, startJellyfinSimulator, startOllamaSimulator, startOpenAISimulator,
  type Simulator,
} from '@homelab/simulators';
import { startDemoTorrents, type DemoTorrents } from './demo-torrents.ts';
import { DemoLife, type DemoLifeOptions } from './demo-life.ts';
import { REPO_ROOT, demoHome, demoRoot } from './home.ts';
import { DEMO_NATS_CONTEXT, writeNatsContext } from './nats-context.ts';

/*
 * `npm run demo`: the whole lab on loopback. The simulators stand in for the AI node and the media
 * node, a small story plays on the media node (demo-life.ts), a simulated client asks the API a
 * question now and then (so the dashboards have traffic), and everything the demo keeps is in its
 * own folder, never the lab's.
 */

export const DEMO_TEMPLATE = join(REPO_ROOT, 'config', 'demo.yaml');

type PortName = 'gateway' | 'nats' | 'metrics' | 'webhooks' | 'vllm' | 'ollama' | 'comfyui' | 'openai' | 'anthropic' | 'jellyfin' | 'sonarr' | 'radarr' | 'prowlarr' | 'qbittorrent' | 'immich';
export type DemoPorts = Record<PortName, number>;

export interface Demo {
  /** For every service: the demo's config, its auth mode, the qBittorrent password. */
  serviceEnv: Record<string, string>;
  /** For the stack runner: the embedded NATS's port. */
  stackEnv: Record<string, string>;
  ports: DemoPorts;
  metricsUrl: string;
  /** Once /readyz is 200: makes the demo's API key (keys on) and starts the simulated client. Returns the key. */
  afterReady(natsUrl: string): Promise<string | undefined>;
  stopTraffic(): Promise<void>;
  stop(): Promise<void>;
}

interface Template {
  gateway: { port: number };
  nodes: Record<string, { services?: Record<string, { port: number; apiKey?: string; username?: string }> }>;
  inference: { openai: { baseURL: string; apiKey: string }; anthropic: { baseURL: string; apiKey: string } };
  media: { paths: string[]; webhooks: { port: number; secret: string } };
  telemetry: { metricsPort: number };
  images?: { models?: Record<string, { workflow: string }> };
  [key: string]: unknown;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const portOf = (url: string): number => Number(new URL(url).port);

/** The ports: config/demo.yaml's, PORT / NATS_PORT / METRICS_PORT over them, or all free ones (HOMELAB_DEMO_PORTS=free). */
export async function demoPorts(template: Template, env: NodeJS.ProcessEnv): Promise<DemoPorts> {
  const svc = (node: string, name: string): number => template.nodes[node]!.services![name]!.port;
  const fixed: DemoPorts = {
    gateway: Number(env['PORT'] || template.gateway.port), nats: Number(env['NATS_PORT'] || 4222), metrics: Number(env['METRICS_PORT'] || template.telemetry.metricsPort),
    webhooks: template.media.webhooks.port, vllm: svc('ai-node', 'vllm'), ollama: svc('ai-node', 'ollama'), comfyui: svc('ai-node', 'comfyui'),
    openai: portOf(template.inference.openai.baseURL), anthropic: portOf(template.inference.anthropic.baseURL),
    jellyfin: svc('media-node', 'jellyfin'), sonarr: svc('media-node', 'sonarr'), radarr: svc('media-node', 'radarr'), prowlarr: svc('media-node', 'prowlarr'),
    qbittorrent: svc('media-node', 'qbittorrent'), immich: svc('media-node', 'immich'),
  };
  if (env['HOMELAB_DEMO_PORTS'] !== 'free') return fixed;
  const free = {} as DemoPorts;
  for (const name of Object.keys(fixed) as PortName[]) free[name] = await freePort();
  return free;
}

/** The demo's lab config: the template with the demo's ports and storage folders. */
export function demoConfig(template: Template, ports: DemoPorts, storage: string[]): Template {
  const config = structuredClone(template);
  const services = (node: string) => config.nodes[node]!.services!;
  config.gateway.port = ports.gateway;
  services('ai-gateway')['gateway']!.port = ports.gateway;
  services('ai-node')['vllm']!.port = ports.vllm;
  services('ai-node')['ollama']!.port = ports.ollama;
  services('ai-node')['comfyui']!.port = ports.comfyui;
  // The copy lives in .demo/: the image models' workflow files are named by their place in config/.
  for (const model of Object.values(config.images?.models ?? {})) model.workflow = join(REPO_ROOT, 'config', model.workflow);
  for (const name of ['jellyfin', 'sonarr', 'radarr', 'prowlarr', 'qbittorrent', 'immich'] as const) services('media-node')[name]!.port = ports[name];
  config.inference.openai.baseURL = `http://127.0.0.1:${ports.openai}/v1`;
  config.inference.anthropic.baseURL = `http://127.0.0.1:${ports.anthropic}`;
  config.media.paths = storage;
  config.media.webhooks.port = ports.webhooks;
  config.telemetry.metricsPort = ports.metrics;
  config['nats'] = { url: `nats://127.0.0.1:${ports.nats}` };
  return config;
}

/** Starts the simulators and the story, writes the demo's config; the stack runner starts the services next. */
export async function prepareDemo(env: NodeJS.ProcessEnv, out: NodeJS.WritableStream): Promise<Demo> {
  const root = demoRoot(env);
  const home = demoHome(env);
  const storage = makeDemoFolders(root);
  const template = parse(readFileSync(DEMO_TEMPLATE, 'utf8')) as Template;
  const ports = await demoPorts(template, env);
  out.write(`demo: everything it keeps is in ${root} (data ${home.dataDir}, NATS secrets ${home.secretsDir}, storage ${join(root, 'storage')}); \`homelab demo --reset\` starts it over\n`);

  const simulators = new Simulators(out);
  await startAiSimulators(simulators, template, ports);
  const media = await startMediaSimulators(simulators, template, ports);
  const torrents = await simulators.startTorrents(root, ports.qbittorrent, env);

  const configFile = join(root, 'demo.yaml');
  writeFileSync(configFile, `# Written by \`homelab demo\` from config/demo.yaml at each start: edit that one.\n${stringify(demoConfig(template, ports, storage))}`);

  const life = new DemoLife({
    ...media, torrents, tickMs: Number(env['HOMELAB_DEMO_TICK_MS'] || 5000),
    webhookUrl: `http://127.0.0.1:${ports.webhooks}/webhooks`, webhookSecret: template.media.webhooks.secret,
  });
  life.start();

  const auth = env['HOMELAB_AUTH'] || 'none';
  const gatewayUrl = `http://127.0.0.1:${ports.gateway}`;
  let traffic: DemoTraffic | undefined;
  return {
    ports,
    metricsUrl: `http://127.0.0.1:${ports.metrics}/metrics`,
    serviceEnv: {
      HOMELAB_CONFIG: configFile,
      // Loopback only: no API keys needed unless asked for (HOMELAB_AUTH=keys); the ingress says so at start.
      HOMELAB_AUTH: auth,
      QBITTORRENT_PASSWORD: torrents.password,
      METRICS_HOST: '127.0.0.1',
      PORT: String(ports.gateway),
      METRICS_PORT: String(ports.metrics),
    },
    stackEnv: { NATS_PORT: String(ports.nats), NATS_HOST: '127.0.0.1' },
    async afterReady(natsUrl) {
      writeDemoNatsContext(env, natsUrl, home.passwordsFile, out);
      const apiKey = auth === 'keys' ? await createDemoKey(natsUrl, home.passwordsFile) : undefined;
      if (apiKey) await untilKeyWorks(gatewayUrl, apiKey);
      traffic = new DemoTraffic(gatewayUrl, apiKey, Number(env['HOMELAB_DEMO_TRAFFIC_MS'] || 20_000));
      traffic.start();
      return apiKey;
    },
    async stopTraffic() { await traffic?.stop(); },
    async stop() {
      await life.stop();
      await simulators.closeAll();
    },
  };
}

/** The demo's folder and its storage paths (what `media.paths` watches). */
function makeDemoFolders(root: string): string[] {
  mkdirSync(root, { recursive: true });
  const storage = ['media', 'downloads', 'photos'].map((p) => join(root, 'storage', p));
  for (const path of storage) mkdirSync(path, { recursive: true });
  return storage;
}

/** The simulators started so far. One that cannot start stops the others: the demo starts whole or not at all. */
class Simulators {
  readonly #out: NodeJS.WritableStream;
  readonly #started: { close(): Promise<void> }[] = [];

  constructor(out: NodeJS.WritableStream) {
    this.#out = out;
  }

  async start<T extends { close(): Promise<void> }>(what: string, port: number, make: () => Promise<T>): Promise<T> {
    try {
      const s = await make();
      this.#started.push(s);
      this.#out.write(`demo: simulated ${what} on http://127.0.0.1:${port}\n`);
      return s;
    } catch (err) {
      await this.closeAll();
      const hint = (err as NodeJS.ErrnoException).code === 'EADDRINUSE' ? ' (in use: stop what holds it, or HOMELAB_DEMO_PORTS=free npm run demo)' : '';
      throw new Error(`cannot start the ${what} simulator on port ${port}: ${(err as Error).message}${hint}`, { cause: err });
    }
  }

  /** The real qbittorrent-nox when it is installed, else a simulated one. */
  async startTorrents(root: string, port: number, env: NodeJS.ProcessEnv): Promise<DemoTorrents> {
    let torrents: DemoTorrents;
    try {
      torrents = await startDemoTorrents({ root, port, env });
    } catch (err) {
      await this.closeAll();
      throw new Error(`cannot start qBittorrent on port ${port}: ${(err as Error).message}`, { cause: err });
    }
    this.#started.push(torrents);
    this.#out.write(`demo: ${torrents.kind === 'real' ? 'qBittorrent (the real qbittorrent-nox, downloading over loopback from a second one that seeds)' : 'simulated qBittorrent (qbittorrent-nox is not installed)'} on ${torrents.url}\n`);
    return torrents;
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled(this.#started.map((s) => s.close()));
  }
}

/** The AI node and the clouds. Answers are paced like a real model's tokens, so streaming is visible; Ollama's larger model loads "cold". */
async function startAiSimulators(simulators: Simulators, template: Template, ports: DemoPorts): Promise<void> {
  const pace = { tokens: 40, tokenIntervalMs: 30 };
  await simulators.start('vLLM', ports.vllm, () => startOpenAISimulator({ ...pace, port: ports.vllm, flavor: 'vllm', models: ['Qwen/Qwen2.5-7B-Instruct'] }));
  await simulators.start('Ollama', ports.ollama, () => startOllamaSimulator({ ...pace, port: ports.ollama, models: ['llama3.2:3b', 'qwen2.5:32b', 'nomic-embed-text'], loaded: ['llama3.2:3b'], coldLoadMs: 3000 }));
  await simulators.start('OpenAI', ports.openai, () => startOpenAISimulator({ ...pace, port: ports.openai, flavor: 'openai', models: ['gpt-5.4-mini', 'text-embedding-3-small'], apiKey: template.inference.openai.apiKey }));
  // ComfyUI: a step every 100 ms, so progress and partial images are visible (docs/images.md).
  await simulators.start('ComfyUI', ports.comfyui, () => startComfyUISimulator({ port: ports.comfyui, stepIntervalMs: 100 }));
  await simulators.start('Anthropic', ports.anthropic, () => startAnthropicSimulator({ ...pace, port: ports.anthropic, models: ['claude-sonnet-5-5'], apiKey: template.inference.anthropic.apiKey }));
}

/** The media node's services, with the keys config/demo.yaml gives them: the story drives them (demo-life.ts). */
async function startMediaSimulators(simulators: Simulators, template: Template, ports: DemoPorts): Promise<Omit<DemoLifeOptions, 'torrents' | 'tickMs' | 'webhookUrl' | 'webhookSecret'>> {
  const key = (name: string): string => template.nodes['media-node']!.services![name]!.apiKey!;
  return {
    sonarr: await simulators.start('Sonarr', ports.sonarr, () => startArrSimulator({ app: 'sonarr', port: ports.sonarr, apiKey: key('sonarr') })),
    radarr: await simulators.start('Radarr', ports.radarr, () => startArrSimulator({ app: 'radarr', port: ports.radarr, apiKey: key('radarr') })),
    prowlarr: await simulators.start('Prowlarr', ports.prowlarr, () => startArrSimulator({ app: 'prowlarr', port: ports.prowlarr, apiKey: key('prowlarr') })),
    jellyfin: await simulators.start('Jellyfin', ports.jellyfin, () => startJellyfinSimulator({ port: ports.jellyfin, apiKey: key('jellyfin') })),
    immich: await simulators.start('Immich', ports.immich, () => startImmichSimulator({ port: ports.immich, apiKey: key('immich') })),
  };
}

/** The nats CLI's context for the demo (`nats --context homelab-demo sub 'health.>'`): its NATS, as `scripts`. Never selected: the demo comes and goes. */
function writeDemoNatsContext(env: NodeJS.ProcessEnv, natsUrl: string, passwordsFile: string, out: NodeJS.WritableStream): void {
  try {
    const password = readNatsSecrets(passwordsFile).scripts;
    const { file } = writeNatsContext(env, DEMO_NATS_CONTEXT, { description: 'Homelab Gateway: the demo, as the scripts user (written by homelab demo)', url: natsUrl, user: 'scripts', password }, { select: 'never' });
    out.write(`demo: nats CLI context '${DEMO_NATS_CONTEXT}' in ${file}\n`);
  } catch (e) {
    out.write(`demo: could not write the nats CLI context '${DEMO_NATS_CONTEXT}': ${(e as Error).message}\n`);
  }
}

/** With keys on, the demo makes one for the person trying it (as `homelab keys create demo` would). */
async function createDemoKey(natsUrl: string, passwordsFile: string): Promise<string> {
  const nc = await connect({ servers: natsUrl, user: 'admin', pass: readNatsSecrets(passwordsFile).admin, inboxPrefix: inboxPrefixFor('admin') });
  try {
    const name = `demo-${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}`;
    const reply = await nc.request('keys.create', JSON.stringify({ name }), { timeout: 5000 });
    const body = reply.json<{ key?: string; error?: { message: string } }>();
    if (!body.key) throw new Error(`could not make the demo's API key: ${body.error?.message ?? reply.string()}`);
    return body.key;
  } finally {
    await nc.close();
  }
}

/**
 * Each ingress learns a new key from the key bucket it follows, a moment after the router stored it:
 * the ready block shows the key once the API takes it, so the first curl copied from it works.
 */
async function untilKeyWorks(gatewayUrl: string, key: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${gatewayUrl}/v1/models`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch { /* the ingress is there (ready); try again */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the demo\'s API key was made but the API did not take it within 15 s');
}

/** What a person sees once the API answers: where things are, and what to type. */
export function readyBlock(o: { url: string; natsUrl: string; key: string | undefined; metricsUrl: string; auth: string; env: NodeJS.ProcessEnv }): string {
  const auth = o.key ? ` -H 'authorization: Bearer ${o.key}'` : '';
  const natsPort = new URL(o.natsUrl).port;
  const natsEnv = natsPort === '4222' ? '' : `NATS_PORT=${natsPort} `;
  const line = '─'.repeat(78);
  return `
${line}
 The demo is ready.
   API (OpenAI-compatible)  ${o.url}/v1          lab status  ${o.url}/status
   NATS                     ${o.natsUrl}      metrics     ${o.metricsUrl}
${o.key ? `   API key (made for this demo; keys are on)  ${o.key}\n` : `   API keys: off (loopback demo); HOMELAB_AUTH=keys npm run demo to try them\n`}
 Try, in another terminal (homelab is on PATH after the README's set-up; else npx homelab):
   curl -sN ${o.url}/v1/chat/completions${auth} -H 'content-type: application/json' \\
     -d '{"model":"smart","messages":[{"role":"user","content":"hi"}],"stream":true}'
   curl -s ${o.url}/v1/models${auth}
   ${natsEnv}homelab chat -m fast "hello"
   ${natsEnv}homelab models
   ${natsEnv}homelab status
   ${natsEnv}homelab media
   ${natsEnv}homelab keys list
   nats --context ${DEMO_NATS_CONTEXT} sub 'health.>'     (the nats CLI, if installed: the lab's events)
 A simulated client asks a question every ${Math.round(Number(o.env['HOMELAB_DEMO_TRAFFIC_MS'] || 20_000) / 1000)} s, so the dashboards move.
 Ctrl-C stops the demo; homelab demo --reset forgets what it kept.
${line}

`;
}

/**
 * A client of the demo's API: a few kinds of request in turn (a local alias streamed, a cloud model
 * by name, an embedding, a local-only request that skips the cloud), each through the HTTP API.
 */
export class DemoTraffic {
  readonly #url: string;
  readonly #key: string | undefined;
  readonly #everyMs: number;
  #timer: NodeJS.Timeout | undefined;
  #n = 0;
  #inFlight: Promise<void> | undefined;
  readonly #abort = new AbortController();

  constructor(url: string, key: string | undefined, everyMs: number) {
    this.#url = url;
    this.#key = key;
    this.#everyMs = everyMs;
  }

  static readonly ROUND: { path: string; body: Record<string, unknown>; headers?: Record<string, string> }[] = [
    { path: '/v1/chat/completions', body: { model: 'fast', messages: [{ role: 'user', content: 'What is a homelab?' }], stream: true, stream_options: { include_usage: true } } },
    { path: '/v1/chat/completions', body: { model: 'smart', messages: [{ role: 'user', content: 'Summarise the lab status.' }], stream: true, stream_options: { include_usage: true } } },
    { path: '/v1/chat/completions', body: { model: 'claude-sonnet-5-5', messages: [{ role: 'user', content: 'Plan a backup.' }], stream: true } },
    { path: '/v1/chat/completions', body: { model: 'gpt-5.4-mini', messages: [{ role: 'user', content: 'Name a film.' }] } },
    { path: '/v1/embeddings', body: { model: 'text-embedding-3-small', input: ['the lab', 'the media node'] } },
    { path: '/v1/chat/completions', body: { model: 'smart', messages: [{ role: 'user', content: 'Stay local.' }] }, headers: { 'x-homelab-route': 'local-only' } },
    { path: '/v1/embeddings', body: { model: 'nomic-embed-text', input: 'the lab' } },
    { path: '/v1/images/generations', body: { model: 'sdxl', prompt: 'a lighthouse at dusk', size: '256x256' } },
    // The other dialects of the house: Claude Code's Messages API, Open WebUI's Ollama API.
    { path: '/v1/messages', body: { model: 'claude-sonnet-5-5', max_tokens: 256, messages: [{ role: 'user', content: 'Review this diff.' }], stream: true }, headers: { 'anthropic-version': '2023-06-01' } },
    { path: '/v1/messages', body: { model: 'smart', max_tokens: 256, messages: [{ role: 'user', content: 'Explain the lab.' }] }, headers: { 'anthropic-version': '2023-06-01' } },
    { path: '/api/chat', body: { model: 'fast', messages: [{ role: 'user', content: 'Hello from Open WebUI.' }] } },
  ];

  start(): void {
    const loop = (): void => {
      this.#inFlight = this.#once().finally(() => {
        if (!this.#abort.signal.aborted) this.#timer = setTimeout(loop, this.#everyMs);
      });
    };
    loop();
  }

  async #once(): Promise<void> {
    const request = DemoTraffic.ROUND[this.#n++ % DemoTraffic.ROUND.length]!;
    try {
      const res = await fetch(`${this.#url}${request.path}`, {
        method: 'POST', signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(60_000)]),
        headers: { 'content-type': 'application/json', ...(this.#key && { authorization: `Bearer ${this.#key}` }), ...request.headers },
        body: JSON.stringify(request.body),
      });
      await res.text();
    } catch {
      // The demo's client is a passer-by: a failed request shows in the dashboards, nothing more.
    }
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    clearTimeout(this.#timer);
    await this.#inFlight;
  }
}

export type { Simulator };
