import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  startAnthropicSimulator, startOllamaSimulator, startOpenAISimulator, type AnthropicSimulator, type OllamaSimulator, type Simulator,
} from '@homelab/simulators';
import type { NatsUser } from '@homelab/bus';
import { startNatsServer, type TestNatsServer } from './nats-server.ts';
import { startServiceProcess, type ServiceProcess } from './service-process.ts';

export interface TestStackOptions {
  /** Service folders to start, in order (default: router, the three workers, ingress). */
  services?: string[];
  /** Extra YAML appended under `inference:` (aliases, timeouts…), indented by the caller. */
  inferenceYaml?: string;
  /** Content tokens per simulated answer. */
  tokens?: number;
  /** vLLM answers with this many reasoning tokens first, as a reasoning model behind `--reasoning-parser` does (default 0). */
  vllmReasoningTokens?: number;
  tokenIntervalMs?: number;
  /** Extra environment for every service. */
  env?: Record<string, string>;
  /** Ollama's simulated cold-load time for models not loaded. */
  ollamaColdLoadMs?: number;
  /** Ollama models already in memory at start (default: all). */
  ollamaLoaded?: string[];
  /** Settings per backend that replace or add to the stack's (e.g. `{ maxConcurrent: 2, whenSaturated: 'spill' }`). */
  backends?: Partial<Record<'vllm' | 'ollama' | 'openai' | 'anthropic', Record<string, string | number | boolean>>>;
  /** The ingress's silence timeout (gateway.silenceTimeoutMs). */
  silenceTimeoutMs?: number;
  /** Require API keys at the ingress (default: off, `HOMELAB_AUTH=none`, as the tests of other things assume). */
  auth?: boolean;
  /** Extra top-level YAML (e.g. a `routing:` section). */
  extraYaml?: string;
}

export interface TestStack {
  nats: TestNatsServer;
  sims: { vllm: Simulator; ollama: OllamaSimulator; openai: Simulator; anthropic: AnthropicSimulator };
  /** `http://127.0.0.1:PORT` of the ingress. */
  ingressUrl: string;
  configFile: string;
  services: ServiceProcess[];
  /** Starts one more copy of a service (e.g. a second router). */
  startService(folder: string, env?: Record<string, string>): Promise<ServiceProcess>;
  [Symbol.asyncDispose](): Promise<void>;
}

export const SIM_MODELS = {
  vllm: ['Qwen/Qwen2.5-7B-Instruct', 'BAAI/bge-small-en-v1.5'],
  ollama: ['llama3.2:3b', 'qwen2.5:32b', 'nomic-embed-text:latest'],
  openai: ['gpt-4.1-mini', 'text-embedding-3-small'],
  anthropic: ['claude-haiku-4-5'],
};

export const SIM_KEYS = { openai: 'sk-test-openai-key', anthropic: 'sk-ant-test-key' };

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The inference stack on loopback: a real nats-server with the project's nats.conf, the four
 * backend simulators, and each service as its own process with a config pointing at them.
 */
export async function startTestStack(options: TestStackOptions = {}): Promise<TestStack> {
  const sims = await startSimulators(options);
  const nats = await startNatsServer();
  const dir = mkdtempSync(join(tmpdir(), 'homelab-stack-'));
  const port = await freePort();
  const configFile = join(dir, 'lab.yaml');
  writeFileSync(configFile, labConfigYaml(sims, { ...options, natsUrl: nats.url, gatewayPort: port, mediaPath: dir }));
  const services: ServiceProcess[] = [];
  const startService = async (folder: string, env: Record<string, string> = {}): Promise<ServiceProcess> => {
    const user = (folder.startsWith('worker-') || ['ingress', 'router', 'health', 'media', 'telemetry'].includes(folder) ? folder : 'scripts') as NatsUser;
    const proc = await startServiceProcess(folder, { nats, user, env: { HOMELAB_CONFIG: configFile, ...(!options.auth && { HOMELAB_AUTH: 'none' }), ...options.env, ...env } });
    services.push(proc);
    return proc;
  };
  const stack: TestStack = {
    nats, sims, configFile, services, startService,
    ingressUrl: `http://127.0.0.1:${port}`,
    async [Symbol.asyncDispose]() {
      await Promise.allSettled(services.map((s) => s.stop()));
      await nats[Symbol.asyncDispose]();
      await Promise.allSettled(Object.values(sims).map((s) => s.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (const folder of options.services ?? ['worker-vllm', 'worker-ollama', 'worker-cloud', 'router', 'ingress']) await startService(folder);
  } catch (err) {
    await stack[Symbol.asyncDispose]();
    throw err;
  }
  return stack;
}

export type Simulators = TestStack['sims'];

/** The four backend simulators of a test stack, on free loopback ports. */
export async function startSimulators(options: Pick<TestStackOptions, 'tokens' | 'tokenIntervalMs' | 'ollamaColdLoadMs' | 'ollamaLoaded' | 'vllmReasoningTokens'> = {}): Promise<Simulators> {
  const simOpts = { tokens: options.tokens ?? 8, tokenIntervalMs: options.tokenIntervalMs ?? 0 };
  return {
    vllm: await startOpenAISimulator({ ...simOpts, flavor: 'vllm', models: SIM_MODELS.vllm, ...(options.vllmReasoningTokens && { reasoningTokens: options.vllmReasoningTokens }) }),
    ollama: await startOllamaSimulator({ ...simOpts, models: SIM_MODELS.ollama, coldLoadMs: options.ollamaColdLoadMs ?? 0, ...(options.ollamaLoaded && { loaded: options.ollamaLoaded }) }),
    openai: await startOpenAISimulator({ ...simOpts, flavor: 'openai', models: SIM_MODELS.openai, apiKey: SIM_KEYS.openai }),
    anthropic: await startAnthropicSimulator({ ...simOpts, models: SIM_MODELS.anthropic, apiKey: SIM_KEYS.anthropic }),
  };
}

/** The lab's YAML for a loopback stack: the AI node's backends are the simulators. */
export function labConfigYaml(sims: Simulators, o: Pick<TestStackOptions, 'backends' | 'inferenceYaml' | 'extraYaml' | 'silenceTimeoutMs'> & { natsUrl: string; gatewayPort: number; mediaPath: string; replicas?: number }): string {
  const backend = (b: keyof NonNullable<TestStackOptions['backends']>, base: Record<string, string | number | boolean>): string =>
    `{ ${Object.entries({ ...base, ...o.backends?.[b] }).map(([k, v]) => `${k}: ${v}`).join(', ')} }`;
  return `
nats: { url: "${o.natsUrl}"${o.replicas ? `, replicas: ${o.replicas}` : ''} }
gateway: { port: ${o.gatewayPort}, host: 127.0.0.1${o.silenceTimeoutMs ? `, silenceTimeoutMs: ${o.silenceTimeoutMs}` : ''} }
nodes:
  ai-node:
    address: 127.0.0.1
    services:
      vllm: { kind: vllm, port: ${sims.vllm.port} }
      ollama: { kind: ollama, port: ${sims.ollama.port} }
inference:
  vllm: ${backend('vllm', { service: 'ai-node/vllm', firstTokenTimeoutMs: 5000, idleTimeoutMs: 5000 })}
  ollama: ${backend('ollama', { service: 'ai-node/ollama', firstTokenTimeoutMs: 10000, idleTimeoutMs: 5000 })}
  openai: ${backend('openai', { baseURL: `${sims.openai.url}/v1`, apiKey: SIM_KEYS.openai, models: '[gpt-4.1-mini, text-embedding-3-small]', firstTokenTimeoutMs: 5000 })}
  anthropic: ${backend('anthropic', { baseURL: sims.anthropic.url, apiKey: SIM_KEYS.anthropic, models: '[claude-haiku-4-5]', firstTokenTimeoutMs: 5000 })}
  discoveryIntervalMs: 500
  # Tests start a router without some (or any) of its workers: ready without their models after 2 s.
  firstDiscoveryWaitMs: 2000
${o.inferenceYaml ?? `  aliases:
    local: [vllm/*, ollama/llama3.2:3b]
    fast: [ollama/llama3.2:3b, vllm/*]
    smart: [vllm/*, ollama/qwen2.5:32b, anthropic/claude-haiku-4-5]`}
media: { paths: [${JSON.stringify(o.mediaPath)}] }
${o.extraYaml ?? ''}

`;
}
