import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AnthropicSimulator, OllamaSimulator, Simulator } from '@homelab/simulators';
import type { NatsUser } from '@homelab/bus';
import { freePort, labConfigYaml, startServiceProcess, startSimulators, type ServiceProcess, type TestNatsServer } from '@homelab/testing';

/*
 * The inference stack's services on any NATS topology (a cluster node, a leaf node): the backend
 * simulators, one lab config on loopback, and each service as its own process connected to the
 * server it is given — as on a real node, where a service talks to its local NATS.
 */

export interface SpreadStack extends AsyncDisposable {
  sims: { vllm: Simulator; ollama: OllamaSimulator; openai: Simulator; anthropic: AnthropicSimulator };
  configFile: string;
  /** Replicas nats.replicas asks for, as written in the config. */
  replicas: number;
  services: ServiceProcess[];
  /** Starts `services/<folder>` connected to `node`; `env` adds to (or overrides) its environment. */
  start(folder: string, node: TestNatsServer, env?: Record<string, string>): Promise<ServiceProcess>;
}

export async function startSpreadStack(options: { replicas?: number; tokens?: number; tokenIntervalMs?: number; extraYaml?: string } = {}): Promise<SpreadStack> {
  const sims = await startSimulators(options);
  const dir = mkdtempSync(join(tmpdir(), 'homelab-spread-'));
  const configFile = join(dir, 'lab.yaml');
  const replicas = options.replicas ?? 1;
  // nats.url is replaced per process by NATS_URL (the server each service is placed on).
  writeFileSync(configFile, labConfigYaml(sims, {
    natsUrl: 'nats://127.0.0.1:4222', replicas, gatewayPort: 8080, mediaPath: dir, backends: { ollama: { firstTokenTimeoutMs: 5000 } },
    ...(options.extraYaml && { extraYaml: options.extraYaml }),
  }));
  const services: ServiceProcess[] = [];
  return {
    sims, configFile, replicas, services,
    async start(folder, node, env = {}) {
      const user = folder as NatsUser;
      // HOMELAB_AUTH=none: API keys at the ingress are another issue's tests; these requests carry none.
      const proc = await startServiceProcess(folder, { nats: node, user, env: { HOMELAB_CONFIG: configFile, HOMELAB_AUTH: 'none', ...env } });
      services.push(proc);
      return proc;
    },
    async [Symbol.asyncDispose]() {
      await Promise.allSettled(services.map((s) => s.stop()));
      await Promise.allSettled(Object.values(sims).map((s) => s.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Outcome { id: string; status: number; ms: number; complete: boolean; error?: string; at: number; model?: string; stream: boolean; contentChunks?: number }

/** One chat request through an ingress; `complete` is a whole answer, `error` an OpenAI error (body or SSE event). */
export async function chat(url: string, model: string, stream: boolean, id: string): Promise<Outcome> {
  const started = Date.now();
  try {
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello' }], stream }),
      signal: AbortSignal.timeout(20_000),
    });
    const text = await res.text();
    const errorMatch = /"error":\{"message":"([^"]*)"/.exec(text);
    const complete = res.status === 200 && (stream ? text.endsWith('data: [DONE]\n\n') && !errorMatch : text.includes('"chat.completion"'));
    // A streamed answer: how many chunks carried content (the simulators send one token per chunk).
    const contentChunks = stream ? text.split('\n').filter((l) => l.startsWith('data: {') && /"content":"[^"]/.test(l)).length : undefined;
    return { id, status: res.status, ms: Date.now() - started, complete, at: started, model, stream, ...(contentChunks !== undefined && { contentChunks }), ...(errorMatch && { error: errorMatch[1] }) };
  } catch (err) {
    return { id, status: 0, ms: Date.now() - started, complete: false, at: started, model, stream, error: `connection: ${(err as Error).message}` };
  }
}

export { freePort };
