// Benchmark of the inference path as a user runs it: `homelab start` (the supervisor, NATS and every
// service) in front of a vLLM simulator in its own process. Every process of the stack and the
// simulator run on CPU 0, the load generator (wrk) on CPU 1, as the peers in docs/performance.md
// were measured. The stack's CPU per request and per stream is reported as a multiple of the
// simulator's own CPU in the same run, with each process's RSS. Then, unpinned, one connection:
// the latency the gateway adds. `--soak M` runs M minutes at 32 connections and reports RSS per minute.
//
// NATS messages per request come from nats-server's /varz; wake-ups per request are the voluntary context
// switches of the stack's threads (each one a thread that slept until input came). `--profile DIR` writes a CPU profile of
// every Node process of the stack to DIR (node --cpu-prof), read with any V8 profile viewer;
// `--nats-profile DIR` writes nats-server's own (Go pprof): a CPU profile of each gateway run
// (nats-json.pb.gz, nats-stream.pb.gz) and its heap after the runs (nats-heap.pb.gz), read with
// `go tool pprof -top FILE` or any pprof viewer.
//
//   node bench/inference.ts [--seconds 10] [--connections 32] [--tokens 16] [--soak 0] [--processes separate|shared] [--profile DIR] [--nats-profile DIR]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '@homelab/testing';
import { cpuUs, nameOf, pin, processTree, rssMb, sleeps } from './processes.ts';
import { startBenchStack, stopBenchStack, type BenchStack } from './stack.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    tokens: { type: 'string', default: '16' },
    soak: { type: 'string', default: '0' },
    processes: { type: 'string', default: 'separate' },
    profile: { type: 'string' },
    'nats-profile': { type: 'string' },
  },
});
const SECONDS = Number(values.seconds);
const CONNECTIONS = Number(values.connections);
const TOKENS = Number(values.tokens);
const SOAK_MINUTES = Number(values.soak);
const NATS_PROFILE_DIR = values['nats-profile'];
const MODEL = 'Qwen/Qwen2.5-7B-Instruct';
const ROOT = new URL('../', import.meta.url).pathname;
const COMMAND = `node bench/inference.ts --seconds ${SECONDS} --connections ${CONNECTIONS} --tokens ${TOKENS} --soak ${SOAK_MINUTES} --processes ${values.processes}${NATS_PROFILE_DIR ? ` --nats-profile ${NATS_PROFILE_DIR}` : ''}`;

for (const tool of ['taskset', 'wrk']) {
  if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).error) throw new Error(`${tool} is needed (apt-get install ${tool === 'taskset' ? 'util-linux' : 'wrk'})`);
}
if (cpus().length < 2) throw new Error('the pinned benchmark needs two CPUs: one for the stack, one for the load generator');

// --- the simulator and the stack ---

async function startSimulator(): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn('taskset', ['-c', '0', process.execPath, join(ROOT, 'bench/simulator.ts'), '--tokens', String(TOKENS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout!.once('data', (b: Buffer) => resolve((JSON.parse(b.toString()) as { port: number }).port));
    proc.once('exit', (code) => reject(new Error(`simulator exited (${code})`)));
  });
  return { proc, port };
}

/** Messages into nats-server so far (every publish of every client). */
async function natsMessagesIn(stack: BenchStack): Promise<number> {
  return ((await (await fetch(`${stack.monitorUrl}/varz`)).json()) as { in_msgs: number }).in_msgs;
}

const natsProfilePort = NATS_PROFILE_DIR ? await freePort() : undefined;

/**
 * Starts fetching a profile from nats-server's Go profiler into NATS_PROFILE_DIR (a CPU profile takes
 * `seconds` to come back). curl, not fetch: wrk runs synchronously meanwhile, and this process's event
 * loop with it. Resolves when the file is written; nothing when --nats-profile is not given.
 */
function natsProfile(kind: 'profile' | 'heap', file: string, seconds = 0): Promise<void> {
  if (!NATS_PROFILE_DIR) return Promise.resolve();
  const url = `http://127.0.0.1:${natsProfilePort}/debug/pprof/${kind}${seconds ? `?seconds=${seconds}` : ''}`;
  const curl = spawn('curl', ['-sf', '-o', join(NATS_PROFILE_DIR, file), url], { stdio: 'inherit' });
  return new Promise((resolve, reject) => curl.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`curl ${url}: exit ${code}`)))));
}

function startStack(simPort: number): Promise<BenchStack> {
  return startBenchStack({
    config: (httpPort, dir) => `
gateway: { port: ${httpPort}, host: 127.0.0.1 }
nodes:
  ai-node:
    address: 127.0.0.1
    services: { vllm: { kind: vllm, port: ${simPort} } }
inference:
  vllm: { service: ai-node/vllm }
auth: { mode: none, ipRateLimitPerMinute: 0 }
media: { paths: [${JSON.stringify(dir)}] }
telemetry: { metricsPort: 0, metricsHost: 127.0.0.1 }
`,
    env: {
      ...(values.processes === 'shared' && { HOMELAB_PROCESSES: 'shared' }),
      ...(values.profile && { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${values.profile}` }),
      ...(natsProfilePort && { NATS_PROFILE_PORT: String(natsProfilePort) }),
    },
    // Ready, and the router has found the simulator's model.
    isReady: (url) => fetch(`${url}/v1/models/vllm/${MODEL}`).then((r) => r.ok, () => false),
    timeoutMs: 60_000,
  });
}

// --- load ---

interface WrkResult { requests: number; rps: number; p50: number; p99: number; errors: number }

function wrk(url: string, body: string, seconds: number, connections: number): WrkResult {
  const dir = mkdtempSync(join(tmpdir(), 'homelab-wrk-'));
  const script = join(dir, 'post.lua');
  writeFileSync(script, `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\n`);
  const run = spawnSync('taskset', ['-c', '1', 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', script, url], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  const out = run.stdout;
  const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? NaN);
  const ms = (re: RegExp): number => {
    const m = re.exec(out);
    if (!m) return NaN;
    const value = Number(m[1]);
    return m[2] === 'us' ? value / 1000 : m[2] === 's' ? value * 1000 : value;
  };
  const errors = num(/Non-2xx or 3xx responses: (\d+)/) || 0;
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: num(/(\d+) requests in/), rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50: ms(/50%\s+([\d.]+)(us|ms|s)/), p99: ms(/99%\s+([\d.]+)(us|ms|s)/),
    errors: errors + (socket ? socket.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0),
  };
}

/** One request's total time and time to the first body byte, in ms. */
function timeOne(url: string, body: string): Promise<{ ms: number; ttft: number }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let ttft = 0;
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.once('data', () => { ttft = performance.now() - start; });
      res.on('data', () => {});
      res.on('end', () => resolve({ ms: performance.now() - start, ttft }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function oneConnection(url: string, body: string, n = 400): Promise<{ p50: number; ttftP50: number }> {
  for (let i = 0; i < 50; i++) await timeOne(url, body);
  const totals: number[] = [];
  const ttfts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = await timeOne(url, body);
    totals.push(t.ms);
    ttfts.push(t.ttft);
  }
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { p50: median(totals), ttftP50: median(ttfts) };
}

// --- the run ---

const fmt = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : '-');
const body = (model: string, stream: boolean): string => JSON.stringify({ model, stream, messages: [{ role: 'user', content: 'Hello' }] });

const sim = await startSimulator();
const stack = await startStack(sim.port);
const directUrl = `http://127.0.0.1:${sim.port}/v1/chat/completions`;
const gatewayUrl = `${stack.url}/v1/chat/completions`;
try {
  const stackPids = processTree(stack.proc.pid!);
  pin([...stackPids, ...processTree(sim.proc.pid!)], '0');
  const out: string[] = [
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; stack processes: ${values.processes}`,
    `Command: ${COMMAND}`,
    `The stack (supervisor, nats-server, every service) and the vLLM simulator pinned to CPU 0; wrk (1 thread, ${CONNECTIONS} connections, ${SECONDS} s) on CPU 1. The simulator answers ${TOKENS} tokens with no delay; a stream is ${TOKENS + 3} SSE events.`,
    '',
    '| mode | target | requests/s | p50 ms | p99 ms | errors | simulator CPU µs/req | stack CPU µs/req | stack ÷ simulator | NATS messages/req | stack wake-ups/req |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const perProcess: string[] = [];
  const stackSleeps = (): number => stackPids.reduce((sum, pid) => sum + sleeps(pid), 0);
  // Idle: ready, the model found, no request served yet (a few seconds for start-up's garbage to go).
  await new Promise((r) => setTimeout(r, 3000));
  const idle = stackPids.map((pid) => [nameOf(pid), rssMb(pid)] as const);
  wrk(gatewayUrl, body(`vllm/${MODEL}`, true), 3, CONNECTIONS); // warm-up: JIT, pools, connections
  for (const stream of [false, true]) {
    const mode = stream ? 'stream' : 'json';
    for (const [target, url, model] of [['direct', directUrl, MODEL], ['gateway', gatewayUrl, `vllm/${MODEL}`]] as const) {
      const before = new Map([...stackPids, sim.proc.pid!].map((pid) => [pid, cpuUs(pid)]));
      const sleepsBefore = stackSleeps();
      const messagesBefore = await natsMessagesIn(stack);
      // The profile covers the run but for its first second (the request must reach nats-server first).
      const profiled = target === 'gateway' ? natsProfile('profile', `nats-${mode}.pb.gz`, SECONDS - 1) : Promise.resolve();
      if (target === 'gateway' && NATS_PROFILE_DIR) await new Promise((r) => setTimeout(r, 500));
      const r = wrk(url, body(model, stream), SECONDS, CONNECTIONS);
      await profiled;
      const messages = (await natsMessagesIn(stack) - messagesBefore) / r.requests;
      const used = (pid: number): number => (cpuUs(pid) - before.get(pid)!) / r.requests;
      const wakeUps = (stackSleeps() - sleepsBefore) / r.requests;
      const simCpu = used(sim.proc.pid!);
      const stackCpu = stackPids.reduce((sum, pid) => sum + used(pid), 0);
      out.push(`| ${mode} | ${target} | ${fmt(r.rps)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${r.errors} | ${fmt(simCpu)} | ${target === 'gateway' ? fmt(stackCpu) : '-'} | ${target === 'gateway' ? fmt(stackCpu / simCpu, 2) : '-'} | ${target === 'gateway' ? fmt(messages, 1) : '-'} | ${target === 'gateway' ? fmt(wakeUps, 1) : '-'} |`);
      if (target === 'gateway') perProcess.push(`| ${mode} | ${stackPids.map((pid) => `${nameOf(pid)} ${fmt(used(pid))}`).join(', ')} |`);
      process.stderr.write(`done: ${mode} ${target}\n`);
    }
  }
  out.push('', 'CPU per request of each process of the stack (µs):', '', '| mode | per process |', '|---|---|', ...perProcess);
  await natsProfile('heap', 'nats-heap.pb.gz');
  const rss = stackPids.map((pid) => [nameOf(pid), rssMb(pid)] as const);
  const total = rss.reduce((sum, [, mb]) => sum + mb, 0);
  out.push('', `RSS when ready, before any request: **${fmt(idle.reduce((sum, [, mb]) => sum + mb, 0))} MB** (${idle.map(([name, mb]) => `${name} ${fmt(mb)}`).join(', ')}).`);
  out.push('', `RSS after the run: **${fmt(total)} MB** for the whole stack (${rss.map(([name, mb]) => `${name} ${fmt(mb)}`).join(', ')}); the simulator ${fmt(rssMb(sim.proc.pid!))} MB.`);

  // One connection, both CPUs: what the gateway adds to a request's latency.
  pin([...stackPids, ...processTree(sim.proc.pid!)], '0-1');
  const directJson = await oneConnection(directUrl, body(MODEL, false));
  const gatewayJson = await oneConnection(gatewayUrl, body(`vllm/${MODEL}`, false));
  const directStream = await oneConnection(directUrl, body(MODEL, true));
  const gatewayStream = await oneConnection(gatewayUrl, body(`vllm/${MODEL}`, true));
  out.push('', 'One connection, unpinned (p50 of 400 sequential requests):', '',
    '| mode | direct ms | gateway ms | added ms | added time to first byte ms |', '|---|---|---|---|---|',
    `| json | ${fmt(directJson.p50, 3)} | ${fmt(gatewayJson.p50, 3)} | ${fmt(gatewayJson.p50 - directJson.p50, 3)} | - |`,
    `| stream | ${fmt(directStream.p50, 3)} | ${fmt(gatewayStream.p50, 3)} | ${fmt(gatewayStream.p50 - directStream.p50, 3)} | ${fmt(gatewayStream.ttftP50 - directStream.ttftP50, 3)} |`);

  if (SOAK_MINUTES > 0) {
    pin([...stackPids, ...processTree(sim.proc.pid!)], '0');
    out.push('', `Soak: ${SOAK_MINUTES} minutes of streams at ${CONNECTIONS} connections, pinned; RSS (MB) at the end of each minute:`, '',
      `| minute | ${stackPids.map(nameOf).join(' | ')} | total |`, `|---|${stackPids.map(() => '---|').join('')}---|`);
    const firstMinute = new Map<number, number>();
    let worst = 0;
    for (let minute = 1; minute <= SOAK_MINUTES; minute++) {
      wrk(gatewayUrl, body(`vllm/${MODEL}`, minute % 2 === 0), 60, CONNECTIONS);
      const now = stackPids.map((pid) => rssMb(pid));
      if (minute === 1) stackPids.forEach((pid, i) => firstMinute.set(pid, now[i]!));
      else stackPids.forEach((pid, i) => { worst = Math.max(worst, now[i]! / firstMinute.get(pid)! - 1); });
      out.push(`| ${minute} | ${now.map((mb) => fmt(mb)).join(' | ')} | ${fmt(now.reduce((a, b) => a + b, 0))} |`);
      process.stderr.write(`soak: minute ${minute}\n`);
    }
    out.push('', `Largest growth of a process after the first minute: ${fmt(worst * 100, 1)}%.`);
    await natsProfile('heap', 'nats-heap-soak.pb.gz');
  }
  const restarts = stack.log.filter((line) => /exited \(/.test(line));
  out.push('', restarts.length === 0 ? 'No process exited or restarted during the run.' : `Processes that exited:\n${restarts.join('\n')}`);
  process.stdout.write(`${out.join('\n')}\n`);
} finally {
  await stopBenchStack(stack);
  sim.proc.kill('SIGTERM');
}
