// Benchmark of the inference path: the gateway (ingress → NATS → router → worker → backend simulator)
// against calling the simulator directly, on one machine. Prints its figures and the command.
//
//   node bench/inference.ts [--seconds 5] [--concurrency 1,32,256] [--tokens 16] [--fail-ratio 0.2]
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { startTestStack, type TestStack } from '@homelab/testing';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '1,32,256' },
    tokens: { type: 'string', default: '16' },
    'fail-ratio': { type: 'string', default: '0.2' },
  },
});
const SECONDS = Number(values.seconds);
const LEVELS = values.concurrency.split(',').map(Number);
const TOKENS = Number(values.tokens);
const FAIL_RATIO = Number(values['fail-ratio']);
const MODEL = 'Qwen/Qwen2.5-7B-Instruct';

interface Result { requests: number; errors: number; rps: number; p50: number; p99: number; ttftP50?: number; cpuUsPerReq?: Record<string, number>; rssMb?: Record<string, number> }

/** One request; resolves with total latency and time to first body byte, in ms. */
function once(agent: Agent, url: URL, body: string): Promise<{ ms: number; ttft: number; ok: boolean }> {
  return new Promise((resolve) => {
    const start = performance.now();
    let ttft = 0;
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.once('data', () => { ttft = performance.now() - start; });
      res.on('data', () => {});
      res.on('end', () => resolve({ ms: performance.now() - start, ttft, ok: res.statusCode === 200 }));
    });
    req.on('error', () => resolve({ ms: performance.now() - start, ttft, ok: false }));
    req.end(body);
  });
}

async function load(target: string, body: string, concurrency: number): Promise<Result> {
  const url = new URL(target);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  const ttfts: number[] = [];
  let errors = 0;
  // Warm up (JIT, connections), then measure.
  await Promise.all(Array.from({ length: concurrency }, () => once(agent, url, body)));
  const end = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const r = await once(agent, url, body);
      if (!r.ok) errors++;
      latencies.push(r.ms);
      ttfts.push(r.ttft);
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  ttfts.sort((a, b) => a - b);
  const pct = (xs: number[], p: number): number => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? NaN;
  return { requests: latencies.length, errors, rps: latencies.length / elapsed, p50: pct(latencies, 0.5), p99: pct(latencies, 0.99), ttftP50: pct(ttfts, 0.5) };
}

/** CPU time (user + system) of a process in microseconds, from /proc. */
function cpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks / 100) * 1e6; // USER_HZ is 100 on Linux
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function gatewayRun(stack: TestStack, body: string, concurrency: number): Promise<Result> {
  const procs = stack.services.filter((s) => ['ingress', 'router', 'worker-vllm'].includes(s.name));
  const before = Object.fromEntries(procs.map((p) => [p.name, cpuUs(p.proc.pid!)]));
  const result = await load(`${stack.ingressUrl}/v1/chat/completions`, body, concurrency);
  // Warm-up requests are included in the CPU figure: it slightly overstates the cost per request.
  const total = result.requests + concurrency;
  result.cpuUsPerReq = Object.fromEntries(procs.map((p) => [p.name, (cpuUs(p.proc.pid!) - before[p.name]!) / total]));
  result.rssMb = Object.fromEntries(procs.map((p) => [p.name, rssMb(p.proc.pid!)]));
  return result;
}

const fmt = (n: number | undefined, d = 2): string => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d));

// One client address sends thousands of requests a second here: the per-address limit is off for the run.
const stack = await startTestStack({ tokens: TOKENS, services: ['worker-vllm', 'worker-ollama', 'router', 'ingress'], extraYaml: 'auth: { ipRateLimitPerMinute: 0 }' });
try {
  const rows: string[] = [];
  const cpuRows: string[] = [];
  for (const stream of [false, true]) {
    for (const c of LEVELS) {
      const direct = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hello' }], stream, ...(stream && { stream_options: { include_usage: true } }) });
      const viaGateway = JSON.stringify({ model: `vllm/${MODEL}`, messages: [{ role: 'user', content: 'Hello' }], stream, ...(stream && { stream_options: { include_usage: true } }) });
      const d = await load(`${stack.sims.vllm.url}/v1/chat/completions`, direct, c);
      const g = await gatewayRun(stack, viaGateway, c);
      const mode = stream ? 'stream' : 'json';
      rows.push(`| ${mode} | ${c} | ${fmt(d.rps, 0)} | ${fmt(d.p50)} | ${fmt(d.p99)} | ${fmt(g.rps, 0)} | ${fmt(g.p50)} | ${fmt(g.p99)} | ${fmt(g.p50 - d.p50)} | ${stream ? fmt((g.ttftP50 ?? 0) - (d.ttftP50 ?? 0)) : '-'} | ${g.errors} |`);
      const cpu = g.cpuUsPerReq!;
      const sum = Object.values(cpu).reduce((a, b) => a + b, 0);
      cpuRows.push(`| ${mode} | ${c} | ${fmt(cpu['ingress'], 0)} | ${fmt(cpu['router'], 0)} | ${fmt(cpu['worker-vllm'], 0)} | ${fmt(sum, 0)} | ${Object.entries(g.rssMb!).map(([k, v]) => `${k} ${fmt(v, 0)}`).join(', ')} |`);
      process.stderr.write(`done: ${mode} c=${c}\n`);
    }
  }
  // Resilience: the preferred backend fails a share of requests; the router falls back to the next candidate.
  const smart = JSON.stringify({ model: 'smart', messages: [{ role: 'user', content: 'Hello' }] });
  const clean = await load(`${stack.ingressUrl}/v1/chat/completions`, smart, 32);
  stack.sims.vllm.setFaults({ status: 500, failRatio: FAIL_RATIO });
  const faulty = await load(`${stack.ingressUrl}/v1/chat/completions`, smart, 32);
  stack.sims.vllm.setFaults({});

  const out = [
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
    `Command: node bench/inference.ts --seconds ${SECONDS} --concurrency ${LEVELS.join(',')} --tokens ${TOKENS} --fail-ratio ${FAIL_RATIO}`,
    `Simulated vLLM answers ${TOKENS} tokens with no delay; everything (NATS, services, simulator, load generator) on this machine.`,
    '',
    '| mode | conns | direct rps | direct p50 ms | direct p99 ms | gateway rps | gateway p50 ms | gateway p99 ms | added p50 ms | added TTFT ms | errors |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    'CPU time per request (µs) in each gateway process, and resident memory after the run:',
    '',
    '| mode | conns | ingress | router | worker-vllm | total | RSS MB |',
    '|---|---|---|---|---|---|---|',
    ...cpuRows,
    '',
    `Fallback (model \`smart\`: vLLM first, Ollama next), 32 connections, vLLM failing ${FAIL_RATIO * 100}% of requests with 500:`,
    '',
    '| run | rps | success | p50 ms | p99 ms |',
    '|---|---|---|---|---|',
    `| clean | ${fmt(clean.rps, 0)} | ${fmt(100 * (1 - clean.errors / clean.requests), 1)}% | ${fmt(clean.p50)} | ${fmt(clean.p99)} |`,
    `| ${FAIL_RATIO * 100}% 500s | ${fmt(faulty.rps, 0)} | ${fmt(100 * (1 - faulty.errors / faulty.requests), 1)}% | ${fmt(faulty.p50)} | ${fmt(faulty.p99)} |`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
} finally {
  await stack[Symbol.asyncDispose]();
}
