/**
 * A fuzz of the HTTP edge: a few thousand generated malformed and hostile requests (test/edge-corpus.ts,
 * seeded, so every run sends the same bytes) thrown at a real ingress process in front of a real
 * stack, while a handful of slow clients hold connections open. The ingress must answer invalid
 * input with a 4xx in OpenAI's error shape, never with a 5xx of its own, stay up, keep its memory,
 * and still answer a valid request at the end.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@homelab/config';
import { createLogger } from '@homelab/logging';
import { simText } from '@homelab/simulators';
import { startTestStack, type ServiceProcess, type TestStack } from '@homelab/testing';
import { buildApp } from '../services/ingress/src/app.ts';
import { buildCorpus, slowRequests, type FuzzInput, type HttpInput, type RawInput } from './edge-corpus.ts';
import { ROUTING_5XX_CODES, errorCodeOf, httpBytes, isOpenAIError, rawExchange, rssOf, type RawOutcome, type RawResponse } from './edge-http.ts';

const SEED = 0x5eed_0008;
const corpus = buildCorpus(SEED);
const CONCURRENCY = 12;
const DEADLINE_MS = 12_000;
/** Many source addresses on loopback: the ingress's per-address rate limit sees many clients, not one. */
const SOURCES = Array.from({ length: 32 }, (_, i) => `127.0.0.${10 + i}`);
/** What the ingress's RSS may grow by across the run, once it had a pause to collect garbage. */
const RSS_SLACK = 64 * 1024 * 1024;
/** EDGE_FUZZ_TRACE=file: one JSON line per input (name, expectation, statuses, error codes, problems). */
const TRACE = process.env['EDGE_FUZZ_TRACE'];
/** Inputs larger than this are sent one at a time. */
const HEAVY_BYTES = 512 * 1024;
const MiB = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;

let stack: TestStack;
let ingress: ServiceProcess;
let port: number;

beforeAll(async () => {
  // API keys are the ingress's own tests' concern; the fuzz tests what comes before and after them.
  stack = await startTestStack({ env: { HOMELAB_AUTH: 'none' } });
  ingress = stack.services.find((s) => s.name === 'ingress')!;
  port = Number(new URL(stack.ingressUrl).port);
}, 60_000);
afterAll(async () => { await stack?.[Symbol.asyncDispose](); });

interface Observed { responses: RawResponse[]; closed: boolean; timedOut: boolean; error?: string }

const agents = new Map<string, Agent>();
const agentFor = (source: string): Agent => {
  let agent = agents.get(source);
  if (!agent) agents.set(source, agent = new Agent({ keepAlive: true, maxSockets: 4, localAddress: source }));
  return agent;
};

/** A well-formed request through node:http, on a keep-alive connection from `source`. */
function sendHttp(input: HttpInput, source: string, deadlineMs: number): Promise<Observed> {
  return new Promise((resolve) => {
    const req = request({
      host: '127.0.0.1', port, method: input.method, path: input.path, agent: agentFor(source),
      headers: { ...input.headers, ...(input.body && { 'content-length': String(input.body.length) }) },
      signal: AbortSignal.timeout(deadlineMs),
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => resolve({ responses: [{ status: res.statusCode!, headers: flat(res.headers), body: Buffer.concat(chunks) }], closed: false, timedOut: false }));
      res.on('error', (e: NodeJS.ErrnoException) => resolve({ responses: [], closed: true, timedOut: false, error: `response: ${e.code ?? e.message}` }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ responses: [], closed: e.name !== 'TimeoutError' && e.name !== 'AbortError', timedOut: e.name === 'TimeoutError' || e.name === 'AbortError', error: e.code ?? e.name }));
    req.end(input.body);
  });
}

function flat(headers: IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]));
}

function sendRaw(input: RawInput, source: string, deadlineMs: number): Promise<RawOutcome> {
  return rawExchange({
    port, localAddress: source, parts: input.parts, deadlineMs,
    ...(input.partDelayMs !== undefined && { partDelayMs: input.partDelayMs }),
    ...(input.responses !== undefined && { responses: input.responses }),
    ...(input.head !== undefined && { head: input.head }),
  });
}

/** What is wrong with the answer to one input: nothing, or a short kind (grouped in the report) per problem. */
function judge(input: FuzzInput, seen: Observed): string[] {
  const problems: string[] = [];
  if (seen.timedOut && seen.responses.length === 0 && !input.mayHang) problems.push(`no answer within ${input.deadlineMs ?? DEADLINE_MS} ms`);
  if (!seen.timedOut && seen.responses.length === 0 && !input.closeOk) problems.push(`connection closed without an answer (${seen.error ?? 'closed'})`);
  for (const r of seen.responses) {
    const code = r.status >= 400 ? errorCodeOf(r.body) : undefined;
    if (r.status >= 500) {
      // A HEAD's answer has no body to tell routing's 503 (e.g. /status without a health service) from another: only 500 is surely the ingress's own.
      const routing = code ? ROUTING_5XX_CODES.has(code) : input.head === true && r.body.length === 0 && r.status !== 500;
      if (!(routing && input.expect !== 'reject')) problems.push(`${r.status} ${code ?? 'without an error code'} (${input.expect} input)`);
    } else if (input.expect === 'reject' && !(r.status >= 400 && r.status < 500)) {
      problems.push(`expected a 4xx, got ${r.status}`);
    } else if (input.expect === 'valid' && !(r.status >= 200 && r.status < 300) && r.status !== 429) {
      problems.push(`a valid request got ${r.status} ${code ?? ''}`);
    }
    if (r.status >= 400 && r.body.length > 0 && !isOpenAIError(r.body)) problems.push(`${r.status} body is not OpenAI's error shape: ${signature(r.body)}`);
    if (r.status >= 200 && r.status < 300 && /json/.test(r.headers['content-type'] ?? '') && r.body.length > 0) {
      try { JSON.parse(r.body.toString()); } catch { problems.push(`${r.status} application/json body that is not JSON`); }
    }
  }
  return problems;
}

/** A short, stable description of a body that is not OpenAI's error shape (Fastify's own: its code, or its message). */
function signature(body: Buffer): string {
  try {
    const parsed = JSON.parse(body.toString()) as Record<string, unknown>;
    return `{${Object.keys(parsed).join(',')}} ${String(parsed['code'] ?? parsed['message'] ?? '')}`;
  } catch {
    return JSON.stringify(body.subarray(0, 60).toString());
  }
}

/** Connections of slow clients, held open during the fuzz; each sends one more byte every second. */
function openSlowClients(): { sockets: { name: string; socket: Socket; closedAt?: number; answered: string }[]; stop(): void } {
  const started = performance.now();
  const sockets = slowRequests().map(({ name, head, drip }, i) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress: SOURCES[i % SOURCES.length]! });
    const entry: { name: string; socket: Socket; closedAt?: number; answered: string } = { name, socket, answered: '' };
    socket.on('data', (b: Buffer) => { entry.answered += b.toString('latin1'); });
    socket.on('error', () => { /* reset by the server: recorded by close */ });
    socket.on('close', () => { entry.closedAt ??= performance.now() - started; });
    socket.write(head);
    const timer = setInterval(() => { if (!socket.destroyed) socket.write(drip); }, 1000);
    socket.on('close', () => clearInterval(timer));
    return entry;
  });
  return { sockets, stop: () => { for (const s of sockets) s.socket.destroy(); } };
}

/** One holder at a time. */
function mutex(): { acquire(): Promise<() => void> } {
  let tail = Promise.resolve();
  return {
    acquire() {
      let release!: () => void;
      const held = new Promise<void>((r) => { release = r; });
      const ready = tail.then(() => release);
      tail = tail.then(() => held);
      return ready;
    },
  };
}

async function settle(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Sends `inputs`, CONCURRENCY at a time (bodies of megabytes one at a time), and hands each answer to `onAnswer`. */
async function runInputs(inputs: FuzzInput[], onAnswer: (input: FuzzInput, seen: Observed) => void): Promise<void> {
  const heavy = mutex();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < inputs.length) {
      const index = next++;
      const input = inputs[index]!;
      const source = SOURCES[index % SOURCES.length]!;
      const deadline = input.deadlineMs ?? DEADLINE_MS;
      const built = input.build();
      // A dozen 4 MiB requests at once would measure nothing but a peak of memory.
      const size = built.kind === 'http' ? built.body?.length ?? 0 : built.parts.reduce((n, p) => n + p.length, 0);
      const release = size > HEAVY_BYTES ? await heavy.acquire() : undefined;
      try {
        onAnswer(input, built.kind === 'http' ? await sendHttp(built, source, deadline) : await sendRaw(built, source, deadline));
      } finally {
        release?.();
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

describe('the ingress under a fuzz of malformed and hostile requests', () => {
  it('does not let a hostile body open a backend\'s circuit for everyone (JSON nested 10^5 deep)', async () => {
    // The router accepts unknown fields as they are; a worker that cannot serialize them must not
    // count that as the backend failing: three such requests would otherwise open vLLM's circuit.
    const deep = `{"model":"vllm/Qwen/Qwen2.5-7B-Instruct","messages":[{"role":"user","content":"hi"}],"extra":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const answers: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${stack.ingressUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: deep });
      answers.push(res.status);
      expect(isOpenAIError(await res.text())).toBe(true);
    }
    const after = await fetch(`${stack.ingressUrl}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', messages: [{ role: 'user', content: 'hi' }] }),
    });
    const text = await after.text();
    expect(answers.every((s) => s >= 400 && s < 500), `the deep requests got ${answers.join(', ')} (a 4xx each expected)`).toBe(true);
    expect(after.status, `a valid request to vLLM after them: ${after.headers.get('x-homelab-route-reason')} ${text.slice(0, 200)}`).toBe(200);
  });

  it(`answers all ${corpus.length} generated inputs (seed ${SEED}) with 4xx in OpenAI's shape, never a 5xx of its own, and keeps serving`, async () => {
    const pid = ingress.proc.pid!;
    // Warm up on a quarter of the corpus (JIT, heap sizes, connections), then the baseline.
    const warmup = corpus.filter((_, i) => i % 4 === 0);
    await runInputs(warmup, () => {});
    for (const agent of agents.values()) agent.destroy();
    agents.clear();
    await settle(1000);
    const rssBefore = rssOf(pid);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => { try { rssPeak = Math.max(rssPeak, rssOf(pid)); } catch { /* exited: checked below */ } }, 200);

    if (TRACE) writeFileSync(TRACE, '');
    const slow = openSlowClients();
    const problems = new Map<string, { count: number; examples: string[] }>();
    const statuses = new Map<string, number>();
    const byCategory = new Map<string, number>();
    const started = performance.now();
    let done = 0;
    await runInputs(corpus, (input, seen) => {
      done++;
      byCategory.set(input.category, (byCategory.get(input.category) ?? 0) + 1);
      const outcome = seen.responses.length ? seen.responses.map((r) => r.status).join('+') : seen.timedOut ? 'held' : 'closed';
      statuses.set(outcome, (statuses.get(outcome) ?? 0) + 1);
      const found = judge(input, seen);
      if (TRACE) appendFileSync(TRACE, `${JSON.stringify({ name: input.name, expect: input.expect, outcome, codes: seen.responses.map((r) => errorCodeOf(r.body) ?? null), problems: found })}\n`);
      for (const p of found) {
        const key = `${input.category}: ${p.replace(/\d+ ms/, 'N ms').slice(0, 160)}`;
        const entry = problems.get(key) ?? { count: 0, examples: [] };
        entry.count++;
        if (entry.examples.length < 3) entry.examples.push(input.name.slice(0, 120));
        problems.set(key, entry);
      }
    });
    const elapsed = performance.now() - started;
    clearInterval(sampler);

    // The slow clients: what the ingress did with them while the fuzz ran.
    const slowReport = slow.sockets.map((s) => `${s.name}: ${s.closedAt === undefined ? 'still open' : `closed at ${(s.closedAt / 1000).toFixed(1)} s${s.answered ? ` with ${s.answered.split('\r\n')[0]}` : ''}`}`);
    slow.stop();
    for (const agent of agents.values()) agent.destroy();

    // A pause with nothing to do, then the ingress's memory again.
    await settle(3000);
    const rssAfter = rssOf(pid);

    // Still up, and still serving.
    const alive = stack.services.filter((s) => s.proc.exitCode === null && s.proc.signalCode === null).map((s) => s.name);
    const final = await fetch(`${stack.ingressUrl}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'fast', messages: [{ role: 'user', content: 'still there?' }] }),
    });
    const finalBody = await final.text();
    const ready = await fetch(`${stack.ingressUrl}/readyz`);
    const ingressErrors = ingress.logs.filter((l) => l['level'] === 'error' || l['level'] === 'fatal');

    const summary = [
      `fuzz: ${done} inputs (seed ${SEED}) in ${(elapsed / 1000).toFixed(1)} s (after ${warmup.length} to warm up), ${CONCURRENCY} at a time from ${SOURCES.length} loopback addresses`,
      `  by category: ${[...byCategory].map(([k, v]) => `${k} ${v}`).join(', ')}`,
      `  answers: ${[...statuses].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}×${v}`).join(' ')}`,
      `  ingress RSS: ${MiB(rssBefore)} before, ${MiB(rssPeak)} peak, ${MiB(rssAfter)} after a 3 s pause (allowed: +${MiB(RSS_SLACK)})`,
      `  slow clients: ${slowReport.join('; ')}`,
      `  problems: ${problems.size === 0 ? 'none' : `\n${[...problems].map(([k, v]) => `    ${v.count}× ${k}\n      e.g. ${v.examples.join(' | ')}`).join('\n')}`}`,
    ].join('\n');
    console.log(summary);

    expect(done, `fuzz: ${done} of ${corpus.length} inputs tried`).toBe(corpus.length);
    expect(alive, 'every process of the stack is still running').toEqual(stack.services.map((s) => s.name));
    expect([...problems.keys()], `fuzz: ${done} inputs; problems:\n${summary.split('  problems: ')[1]}`).toEqual([]);
    expect(final.status, finalBody).toBe(200);
    expect((JSON.parse(finalBody) as { choices: { message: { content: string } }[] }).choices[0]!.message.content).toBe(simText(8));
    expect(ready.status).toBe(200);
    expect(ingressErrors.map((l) => JSON.stringify(l).slice(0, 300)), 'error lines in the ingress\'s log').toEqual([]);
    expect(rssAfter - rssBefore, `ingress RSS ${MiB(rssBefore)} → ${MiB(rssAfter)} (peak ${MiB(rssPeak)})`).toBeLessThan(RSS_SLACK);
  }, 120_000);

  it('keeps a request local however its x-homelab-route: local-only header is spelled or repeated (fails closed)', async () => {
    const body = Buffer.from(JSON.stringify({ model: 'gpt-4.1-mini', messages: [{ role: 'user', content: 'a private question' }] }));
    const variants: [string, string][][] = [
      [['x-homelab-route', 'local-only']],
      // Node joins repeated headers with ", " (a proxy or a client library may repeat it).
      [['x-homelab-route', 'local-only'], ['x-homelab-route', 'local-only']],
      [['X-Homelab-Route', 'Local-Only']],
      [['x-homelab-route', 'local-only,']],
    ];
    const leaked: string[] = [];
    for (const headers of variants) {
      const out = await rawExchange({ port, deadlineMs: 10_000, parts: [httpBytes('POST', '/v1/chat/completions', [['Content-Type', 'application/json'], ['Connection', 'close'], ...headers], body)] });
      const r = out.responses[0];
      if (!r || r.headers['x-homelab-backend'] === 'openai' || r.status === 200) leaked.push(`${JSON.stringify(headers)} → ${r?.status} ${r?.headers['x-homelab-route-reason'] ?? ''}`);
    }
    expect(leaked, 'requests marked local-only that were answered by a cloud backend').toEqual([]);
  });

  it('cuts off requests whose body never ends (a request timeout is set)', async () => {
    // The fuzz holds such requests open for its whole run, but the timeout is longer than a test
    // should wait; Node enforces it (and headersTimeout) from the server's settings checked here.
    const config = loadConfig({ file: stack.configFile, env: { HOMELAB_AUTH: 'none' } });
    const app = buildApp({ config, log: createLogger({ service: 'ingress-test', level: 'silent' }), bus: { connected: false, draining: false } });
    try {
      await app.ready();
      expect(app.server.requestTimeout, 'Fastify\'s default requestTimeout is 0: a body may trickle in forever').toBeGreaterThan(0);
      expect(app.server.requestTimeout).toBeLessThanOrEqual(120_000);
    } finally {
      await app.close();
    }
  });
});
