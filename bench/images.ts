// Benchmark of the images path (docs/images.md) as a user runs it: `homelab start` (the supervisor, NATS
// and every service) in front of the ComfyUI simulator in its own process, with one text-to-image model
// (the shipped SDXL workflow). The simulator runs at full speed (no time per step or node, small images),
// so what is measured is the gateway's own cost per job: the work queue, the job records, the events,
// the object store, the answers.
//
// Pinned: the stack and the simulator on CPU 0, this process (the load generator) on CPU 1. `--jobs`
// image jobs, `--concurrency` at a time, in each mode:
//   b64_json       POST /v1/images/generations, response_format b64_json
//   url            the same with response_format url, then GET of the signed URL
//   nats-events    images.jobs.submit, the job's end from the IMAGES stream (one ordered consumer for the
//                  run, as a script following its jobs would), then the file from the object store
//   nats-generate  images.generate (waits; the image inline as b64_json)
// For each: jobs/s, p50/p99 job latency, queue wait (the job records' startedAt − submittedAt), the CPU
// per job of each process (from /proc/<pid>/stat) in total and as a multiple of the simulator's own CPU
// in the same run, NATS messages per job (nats-server's /varz in_msgs, and /connz per connection),
// then the RSS of every process (/proc/<pid>/status) and whether any exited. Then, unpinned, one job at
// a time: the latency the gateway adds over calling ComfyUI's API directly for the same workflow
// (websocket, POST /prompt, the end of the prompt, GET /view).
//
// `--profile DIR` writes a CPU profile of every Node process of the stack to DIR (node --cpu-prof).
//
//   node bench/images.ts [--jobs 200] [--concurrency 8] [--comfy-concurrency 1] [--size 64x64] [--steps 4] [--step-ms 0] [--previews] [--sequential 50] [--modes b64_json,url,nats-events,nats-generate] [--profile DIR]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { readNatsSecrets, readObjectByName } from '@homelab/bus';
import { alive, cpuUs, killTree, nameOf, pin, processTree, rssMb } from './processes.ts';
import { startBenchStack, stopBenchStack, type BenchStack } from './stack.ts';

const MODES = ['b64_json', 'url', 'nats-events', 'nats-generate'] as const;
type Mode = (typeof MODES)[number];

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '8' },
    'comfy-concurrency': { type: 'string', default: '1' },
    size: { type: 'string', default: '64x64' },
    steps: { type: 'string', default: '4' },
    'step-ms': { type: 'string', default: '0' },
    previews: { type: 'boolean', default: false },
    sequential: { type: 'string', default: '50' },
    modes: { type: 'string', default: MODES.join(',') },
    profile: { type: 'string' },
  },
});
const JOBS = Number(values.jobs);
const CONCURRENCY = Number(values.concurrency);
const COMFY_CONCURRENCY = Number(values['comfy-concurrency']);
const SIZE = values.size;
const [WIDTH, HEIGHT] = SIZE.split('x').map(Number) as [number, number];
const STEPS = Number(values.steps);
const STEP_MS = Number(values['step-ms']);
const SEQUENTIAL = Number(values.sequential);
const modes = values.modes.split(',').map((m) => m.trim()) as Mode[];
for (const m of modes) if (!MODES.includes(m)) throw new Error(`--modes: '${m}' is not one of ${MODES.join(', ')}`);
if (!(WIDTH > 0 && HEIGHT > 0)) throw new Error(`--size ${SIZE}: expected WIDTHxHEIGHT`);
const MODEL = 'sdxl';
const ROOT = new URL('../', import.meta.url).pathname;
const WORKFLOW = join(ROOT, 'config/workflows/sdxl-text-to-image.json');
const COMMAND = `node bench/images.ts --jobs ${JOBS} --concurrency ${CONCURRENCY} --comfy-concurrency ${COMFY_CONCURRENCY} --size ${SIZE} --steps ${STEPS} --step-ms ${STEP_MS}${values.previews ? ' --previews' : ''} --sequential ${SEQUENTIAL} --modes ${modes.join(',')}`;

if (spawnSync('taskset', ['--version'], { stdio: 'ignore' }).error) throw new Error('taskset is needed (apt-get install util-linux)');
if (cpus().length < 2) throw new Error('the pinned benchmark needs two CPUs: one for the stack, one for the load generator');

// --- the simulator and the stack ---

interface Simulator { proc: ChildProcess; port: number; pids: number[] }

async function startSimulator(): Promise<Simulator> {
  const args = [join(ROOT, 'bench/comfyui-simulator.ts'), '--step-ms', String(STEP_MS), '--node-ms', '0', ...(values.previews ? ['--previews'] : [])];
  const proc = spawn('taskset', ['-c', '0', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout!.once('data', (b: Buffer) => resolve((JSON.parse(b.toString()) as { port: number }).port));
    proc.once('exit', (code) => reject(new Error(`the ComfyUI simulator exited (${code})`)));
  });
  return { proc, port, pids: processTree(proc.pid!) };
}

function startStack(simPort: number): Promise<BenchStack> {
  return startBenchStack({
    config: (httpPort, dir) => `
gateway: { port: ${httpPort}, host: 127.0.0.1 }
nodes:
  ai-node:
    address: 127.0.0.1
    services: { comfyui: { kind: comfyui, port: ${simPort} } }
auth: { mode: none, ipRateLimitPerMinute: 0 }
media: { paths: [${JSON.stringify(dir)}] }
telemetry: { metricsPort: 0, metricsHost: 127.0.0.1 }
images:
  comfyui: { service: ai-node/comfyui, concurrency: ${COMFY_CONCURRENCY} }
  models:
    ${MODEL}:
      workflow: ${JSON.stringify(WORKFLOW)}
      mapping: { prompt: 6.text, negativePrompt: 7.text, width: 5.width, height: 5.height, seed: 3.seed, steps: 3.steps, batchSize: 5.batch_size }
      defaults: { width: ${WIDTH}, height: ${HEIGHT}, steps: ${STEPS} }
`,
    env: { ...(values.profile && { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${values.profile}` }) },
    // The router lists the image model: its discovery reached worker-comfyui, which reached ComfyUI.
    isReady: (url) => fetch(`${url}/v1/models`).then(async (r) => ((await r.json()) as { data: { id: string; type?: string }[] }).data.some((m) => m.id === MODEL && m.type === 'image'), () => false),
    timeoutMs: 90_000,
  });
}

// --- NATS: messages in, per connection; JetStream API calls and stored messages, per stream ---

interface NatsCounts { total: number; byName: Map<string, number>; jsApi: number; streams: Map<string, number>; consumers: Map<string, number> }

async function natsCounts(stack: BenchStack): Promise<NatsCounts> {
  const get = async <T>(path: string): Promise<T> => (await (await fetch(`${stack.monitorUrl}${path}`)).json()) as T;
  const varz = await get<{ in_msgs: number }>('/varz');
  const connz = await get<{ connections?: { name?: string; in_msgs: number }[] }>('/connz?limit=4096');
  const jsz = await get<{ api?: { total: number }; account_details?: { stream_detail?: { name: string; state: { last_seq: number; consumer_count: number } }[] }[] }>('/jsz?accounts=true&streams=true');
  const byName = new Map<string, number>();
  for (const c of connz.connections ?? []) byName.set(c.name || '(unnamed)', (byName.get(c.name || '(unnamed)') ?? 0) + c.in_msgs);
  const streams = new Map<string, number>();
  const consumers = new Map<string, number>();
  for (const account of jsz.account_details ?? []) {
    for (const s of account.stream_detail ?? []) {
      streams.set(s.name, s.state.last_seq);
      consumers.set(s.name, s.state.consumer_count);
    }
  }
  return { total: varz.in_msgs, byName, jsApi: jsz.api?.total ?? NaN, streams, consumers };
}

// --- the clients ---

const agent = new Agent({ keepAlive: true, maxSockets: 256 });

function http(method: string, url: string, body?: unknown): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {} }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (p: Buffer) => parts.push(p));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    // A job that never ends fails the sample instead of hanging the benchmark.
    req.setTimeout(120_000, () => req.destroy(new Error(`${method} ${url}: no answer within 120 s`)));
    req.end(data);
  });
}

/** A PNG of the asked size, or an error saying what came instead. */
function checkPng(data: Uint8Array): void {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.length < 24 || b.readUInt32BE(0) !== 0x89504e47) throw new Error(`not a PNG (${b.length} bytes)`);
  const size = `${b.readUInt32BE(16)}x${b.readUInt32BE(20)}`;
  if (size !== SIZE) throw new Error(`a ${size} PNG, not ${SIZE}`);
}

interface JobSample { ms: number; jobId?: string; queueWaitMs?: number }

const jobBody = (i: number, responseFormat: 'b64_json' | 'url'): Record<string, unknown> => ({
  model: MODEL, prompt: `a lighthouse at dusk, number ${i}`, size: SIZE, steps: STEPS, response_format: responseFormat,
});

async function httpJob(stack: BenchStack, i: number, format: 'b64_json' | 'url'): Promise<JobSample> {
  const start = performance.now();
  const res = await http('POST', `${stack.url}/v1/images/generations`, jobBody(i, format));
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.body.toString().slice(0, 200)}`);
  const answer = JSON.parse(res.body.toString()) as { data: { b64_json?: string; url?: string }[] };
  const jobId = String(res.headers['x-homelab-job-id']);
  if (format === 'b64_json') {
    checkPng(Buffer.from(answer.data[0]?.b64_json ?? '', 'base64'));
  } else {
    const file = await http('GET', answer.data[0]?.url ?? '');
    if (file.status !== 200) throw new Error(`GET of the image URL: HTTP ${file.status}`);
    checkPng(file.body);
  }
  return { ms: performance.now() - start, jobId };
}

/** One ordered consumer of the IMAGES stream for a whole run: each job's end, by its id. */
class JobEnds {
  readonly #ends = new Map<string, Record<string, unknown> & { kind: string }>();
  readonly #waiters = new Map<string, (end: Record<string, unknown> & { kind: string }) => void>();
  #stop: (() => Promise<void>) | undefined;

  async start(nc: NatsConnection): Promise<void> {
    const consumer = await jetstream(nc).consumers.get('IMAGES', { deliver_policy: DeliverPolicy.New });
    const messages = await consumer.consume();
    const loop = (async () => {
      for await (const m of messages as AsyncIterable<JsMsg>) {
        const [, kind, id] = m.subject.split('.');
        if (kind !== 'completed' && kind !== 'failed' && kind !== 'cancelled') continue;
        const end = { ...m.json<Record<string, unknown>>(), kind };
        const waiter = this.#waiters.get(id!);
        if (waiter) { this.#waiters.delete(id!); waiter(end); } else this.#ends.set(id!, end);
      }
    })();
    this.#stop = async () => { await messages.close(); await loop; };
  }

  wait(id: string, timeoutMs = 120_000): Promise<Record<string, unknown> & { kind: string }> {
    const end = this.#ends.get(id);
    if (end) { this.#ends.delete(id); return Promise.resolve(end); }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.#waiters.delete(id); reject(new Error(`no end event for ${id} within ${timeoutMs} ms`)); }, timeoutMs);
      this.#waiters.set(id, (e) => { clearTimeout(t); resolve(e); });
    });
  }

  async stop(): Promise<void> {
    await this.#stop?.();
  }
}

async function natsJson<T>(nc: NatsConnection, subject: string, body: unknown, timeoutMs = 10_000): Promise<T> {
  const reply = await nc.request(subject, body === undefined ? undefined : JSON.stringify(body), { timeout: timeoutMs });
  const code = reply.headers?.get('Nats-Service-Error-Code');
  if (code) throw new Error(`${subject}: ${code} ${reply.headers!.get('Nats-Service-Error')}`);
  return reply.json<T>();
}

async function natsEventsJob(nc: NatsConnection, ends: JobEnds, store: ObjectStore, jsm: JetStreamManager, i: number): Promise<JobSample> {
  const start = performance.now();
  const job = await natsJson<{ id: string }>(nc, 'images.jobs.submit', jobBody(i, 'b64_json'));
  const end = await ends.wait(job.id);
  if (end.kind !== 'completed') throw new Error(`job ${job.id} ${end.kind}: ${JSON.stringify(end['error'] ?? '')}`);
  const image = (end['images'] as { id: string }[])[0]!;
  const data = await readObjectByName(jsm, store, image.id);
  if (!data) throw new Error(`image ${image.id} is not in the object store`);
  checkPng(data);
  return { ms: performance.now() - start, jobId: job.id, queueWaitMs: Number(end['queueWaitMs']) };
}

async function natsGenerateJob(nc: NatsConnection, i: number): Promise<JobSample> {
  const start = performance.now();
  const result = await natsJson<{ id: string; data: { b64_json?: string }[] }>(nc, 'images.generate', jobBody(i, 'b64_json'), 120_000);
  checkPng(Buffer.from(result.data[0]?.b64_json ?? '', 'base64'));
  return { ms: performance.now() - start, jobId: result.id };
}

/** The same job straight at ComfyUI, as a minimal client does it: websocket, POST /prompt, the prompt's end, GET /view. */
const workflowTemplate = JSON.parse(readFileSync(WORKFLOW, 'utf8')) as Record<string, { class_type: string; inputs: Record<string, unknown> }>;

async function directJob(simPort: number, i: number): Promise<JobSample> {
  const start = performance.now();
  const workflow = structuredClone(workflowTemplate);
  workflow['6']!.inputs['text'] = `a lighthouse at dusk, number ${i}`;
  workflow['5']!.inputs['width'] = WIDTH;
  workflow['5']!.inputs['height'] = HEIGHT;
  workflow['3']!.inputs['seed'] = Math.floor(Math.random() * 2 ** 47);
  workflow['3']!.inputs['steps'] = STEPS;
  const clientId = randomUUID();
  const ws = new WebSocket(`ws://127.0.0.1:${simPort}/ws?clientId=${clientId}`);
  ws.binaryType = 'arraybuffer';
  let promptId: string | undefined;
  const outputs: { filename: string; subfolder: string; type: string }[] = [];
  let onReady!: () => void;
  let onDone!: () => void;
  let onError!: (err: Error) => void;
  const ready = new Promise<void>((resolve) => { onReady = resolve; });
  const done = new Promise<void>((resolve, reject) => { onDone = resolve; onError = reject; });
  ws.addEventListener('message', (event) => {
    if (typeof event.data !== 'string') return; // a preview
    const { type, data } = JSON.parse(event.data) as { type: string; data: Record<string, unknown> };
    if (type === 'status') onReady();
    if (data['prompt_id'] !== promptId || promptId === undefined) return;
    if (type === 'executed') outputs.push(...((data['output'] as { images?: typeof outputs }).images ?? []));
    if (type === 'executing' && data['node'] === null) onDone();
    if (type === 'execution_error' || type === 'execution_interrupted') onError(new Error(`ComfyUI: ${type}`));
  });
  ws.addEventListener('error', () => onError(new Error('websocket error')));
  try {
    await ready;
    promptId = randomUUID();
    const res = await http('POST', `http://127.0.0.1:${simPort}/prompt`, { prompt: workflow, client_id: clientId, prompt_id: promptId });
    if (res.status !== 200) throw new Error(`POST /prompt: HTTP ${res.status}`);
    await done;
    const ref = outputs.find((o) => o.type === 'output');
    if (!ref) throw new Error('no output image');
    const view = await http('GET', `http://127.0.0.1:${simPort}/view?${new URLSearchParams(ref)}`);
    if (view.status !== 200) throw new Error(`GET /view: HTTP ${view.status}`);
    checkPng(view.body);
  } finally {
    ws.close();
  }
  return { ms: performance.now() - start };
}

/** `n` jobs, `concurrency` at a time; failures are counted, not thrown. */
async function runJobs(n: number, concurrency: number, one: (i: number) => Promise<JobSample>): Promise<{ samples: JobSample[]; errors: string[]; seconds: number }> {
  const samples: JobSample[] = [];
  const errors: string[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, async () => {
    while (next < n) {
      const i = next++;
      try { samples.push(await one(i)); } catch (err) { errors.push((err as Error).message); }
    }
  }));
  return { samples, errors, seconds: (performance.now() - start) / 1000 };
}

/** Queue waits from the job records (startedAt − submittedAt), asked after the measured run. */
async function queueWaits(nc: NatsConnection, samples: JobSample[]): Promise<number[]> {
  const waits: number[] = [];
  for (const s of samples) {
    if (s.queueWaitMs !== undefined) { waits.push(s.queueWaitMs); continue; }
    if (!s.jobId) continue;
    const record = await natsJson<{ submittedAt: string; startedAt?: string }>(nc, `images.jobs.${s.jobId}.status`, undefined).catch(() => undefined);
    if (record?.startedAt) waits.push(Date.parse(record.startedAt) - Date.parse(record.submittedAt));
  }
  return waits;
}

const quantile = (xs: number[], q: number): number => {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
};
const fmt = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : '-');

// --- the run ---

const sim = await startSimulator();
let stack: BenchStack | undefined;
let nc: NatsConnection | undefined;
const cleanUp = async (): Promise<void> => {
  await nc?.close().catch(() => undefined);
  if (stack) await stopBenchStack(stack);
  await killTree(processTree(sim.proc.pid!));
  agent.destroy();
};
process.once('SIGINT', () => void cleanUp().then(() => process.exit(130)));

try {
  stack = await startStack(sim.port);
  // As a script does: the `scripts` user, with the password the stack generated into its secrets.
  const pass = readNatsSecrets(stack.passwordsFile).scripts;
  nc = await connect({ servers: stack.natsUrl, name: 'bench-images', user: 'scripts', pass });
  const store = await new Objm(nc).open('images');
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const ends = new JobEnds();
  const running = stack;
  const conn = nc;
  const job = (mode: Mode): ((i: number) => Promise<JobSample>) => {
    switch (mode) {
      case 'b64_json': return (i) => httpJob(running, i, 'b64_json');
      case 'url': return (i) => httpJob(running, i, 'url');
      case 'nats-events': return (i) => natsEventsJob(conn, ends, store, jsm, i);
      case 'nats-generate': return (i) => natsGenerateJob(conn, i);
    }
  };
  const stackPids = stack.pids;
  const simPids = processTree(sim.proc.pid!);
  pin([...stackPids, ...simPids], '0');
  pin([process.pid], '1');

  const out: string[] = [
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
    `Command: ${COMMAND}`,
    `The stack (supervisor, nats-server, every service) and the ComfyUI simulator pinned to CPU 0; the load generator (this process) on CPU 1. ` +
    `${JOBS} jobs per mode, ${CONCURRENCY} at a time; images.comfyui.concurrency ${COMFY_CONCURRENCY}; the shipped SDXL workflow at ${SIZE}, ${STEPS} steps; ` +
    `the simulator takes ${STEP_MS} ms per step and 0 per node, previews ${values.previews ? 'on' : 'off'}.`,
    '',
    '| mode | jobs/s | p50 ms | p99 ms | queue wait p50 ms | p99 ms | errors | simulator CPU µs/job | stack CPU µs/job | stack ÷ simulator | NATS messages/job (stack) | (load generator) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const perProcess: string[] = [];
  const perConnection: string[] = [];
  const connectionNames = new Set<string>();
  const perConnectionRows: { mode: Mode; counts: Map<string, number> }[] = [];
  const jetStreamRows: string[] = [];
  const streamNames = ['KV_image-jobs', 'IMAGES', 'IMAGE_JOBS', 'OBJ_images'];

  process.stderr.write('warm-up\n');
  await runJobs(Math.min(40, JOBS), CONCURRENCY, job('b64_json'));
  for (const mode of modes) {
    if (mode === 'nats-events') await ends.start(conn);
    const before = new Map([...stackPids, ...simPids].map((pid) => [pid, cpuUs(pid)]));
    const messagesBefore = await natsCounts(running);
    const r = await runJobs(JOBS, CONCURRENCY, job(mode));
    const messagesAfter = await natsCounts(running);
    const used = (pid: number): number => (cpuUs(pid) - before.get(pid)!) / JOBS;
    if (mode === 'nats-events') await ends.stop();
    const simCpu = simPids.reduce((sum, pid) => sum + used(pid), 0);
    const stackCpu = stackPids.reduce((sum, pid) => sum + used(pid), 0);
    const benchMessages = ((messagesAfter.byName.get('bench-images') ?? 0) - (messagesBefore.byName.get('bench-images') ?? 0)) / JOBS;
    const messages = (messagesAfter.total - messagesBefore.total) / JOBS - benchMessages;
    const waits = await queueWaits(conn, r.samples);
    const latencies = r.samples.map((s) => s.ms);
    out.push(`| ${mode} | ${fmt(JOBS / r.seconds, 1)} | ${fmt(quantile(latencies, 0.5), 1)} | ${fmt(quantile(latencies, 0.99), 1)} | ${fmt(quantile(waits, 0.5), 1)} | ${fmt(quantile(waits, 0.99), 1)} | ${r.errors.length} | ${fmt(simCpu)} | ${fmt(stackCpu)} | ${fmt(stackCpu / simCpu, 1)} | ${fmt(messages, 1)} | ${fmt(benchMessages, 1)} |`);
    perProcess.push(`| ${mode} | ${stackPids.map((pid) => [nameOf(pid), used(pid)] as const).filter(([, us]) => us > 0).sort((a, b) => b[1] - a[1]).map(([name, us]) => `${name} ${fmt(us)}`).join(', ')} |`);
    const counts = new Map<string, number>();
    for (const [name, n] of messagesAfter.byName) {
      const per = (n - (messagesBefore.byName.get(name) ?? 0)) / JOBS;
      counts.set(name, per);
      if (per > 0) connectionNames.add(name);
    }
    perConnectionRows.push({ mode, counts });
    const writes = (stream: string): number => ((messagesAfter.streams.get(stream) ?? 0) - (messagesBefore.streams.get(stream) ?? 0)) / JOBS;
    jetStreamRows.push(`| ${mode} | ${fmt((messagesAfter.jsApi - messagesBefore.jsApi) / JOBS, 1)} | ${streamNames.map((n) => fmt(writes(n), 1)).join(' | ')} | ${streamNames.map((n) => messagesAfter.consumers.get(n) ?? 0).join(', ')} |`);
    if (r.errors.length > 0) process.stderr.write(`${mode}: ${r.errors.length} errors, e.g. ${r.errors[0]}\n`);
    process.stderr.write(`done: ${mode}\n`);
  }
  const names = [...connectionNames].sort();
  perConnection.push(`| mode | ${names.join(' | ')} |`, `|---|${names.map(() => '---|').join('')}`);
  for (const row of perConnectionRows) perConnection.push(`| ${row.mode} | ${names.map((n) => fmt(row.counts.get(n) ?? 0, 1)).join(' | ')} |`);
  out.push('', 'CPU per job of each process of the stack (µs, largest first):', '', '| mode | per process |', '|---|---|', ...perProcess);
  out.push('', 'NATS messages per job into nats-server, by connection (/connz in_msgs):', '', ...perConnection);
  out.push('', 'JetStream per job: API requests (/jsz api.total, the load generator\'s included) and messages stored, by stream (last_seq); and the consumers of those streams right after the mode:', '',
    `| mode | API requests | ${streamNames.join(' | ')} | consumers (${streamNames.join(', ')}) |`, `|---|---|${streamNames.map(() => '---|').join('')}---|`, ...jetStreamRows);
  const rss = stackPids.filter(alive).map((pid) => [nameOf(pid), rssMb(pid)] as const);
  const total = rss.reduce((sum, [, mb]) => sum + mb, 0);
  out.push('', `RSS after the run: **${fmt(total)} MB** for the whole stack (${rss.map(([name, mb]) => `${name} ${fmt(mb)}`).join(', ')}); the simulator ${fmt(simPids.reduce((s, pid) => s + rssMb(pid), 0))} MB.`);

  if (SEQUENTIAL > 0) {
    // One job at a time, both CPUs: what the gateway adds to a job's latency.
    pin([...stackPids, ...simPids, process.pid], '0-1');
    await runJobs(5, 1, (i) => directJob(sim.port, i));
    const direct = await runJobs(SEQUENTIAL, 1, (i) => directJob(sim.port, i));
    const directMs = quantile(direct.samples.map((s) => s.ms), 0.5);
    out.push('', `One job at a time, unpinned (p50 of ${SEQUENTIAL} sequential jobs, after 5 to warm up):`, '',
      '| target | p50 ms | added over ComfyUI ms | errors |', '|---|---|---|---|', `| ComfyUI directly (websocket, POST /prompt, GET /view) | ${fmt(directMs, 2)} | - | ${direct.errors.length} |`);
    for (const mode of modes) {
      if (mode === 'nats-events') await ends.start(conn);
      await runJobs(5, 1, job(mode));
      const r = await runJobs(SEQUENTIAL, 1, job(mode));
      if (mode === 'nats-events') await ends.stop();
      const p50 = quantile(r.samples.map((s) => s.ms), 0.5);
      out.push(`| gateway, ${mode} | ${fmt(p50, 2)} | ${fmt(p50 - directMs, 2)} | ${r.errors.length} |`);
      process.stderr.write(`done: sequential ${mode}\n`);
    }
  }
  const exits = running.log.filter((line) => /exited \(/.test(line));
  out.push('', exits.length === 0 ? 'No process exited or restarted during the run.' : `Processes that exited:\n${exits.join('\n')}`);
  process.stdout.write(`${out.join('\n')}\n`);
} finally {
  await cleanUp();
}
