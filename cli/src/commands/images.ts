import { writeFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parseArgs } from 'node:util';
import { DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import {
  IMAGES_BUCKET, Subjects, createHeaders, readObjectByName, errorFromReply, imageJobCancelSubject, imageJobStatusSubject,
  type ImageJobRecord, type ImageSubmitReply, type NatsConnection,
} from '@homelab/bus';
import { Exit, connectToLab, type Command } from '../command.ts';

export const IMAGES_USAGE = `usage: homelab images generate PROMPT [-o FILE.png] [-m MODEL] [--size WxH] [-n N] [--steps N] [--seed N] [--negative TEXT] [--local-only]
       homelab images jobs [--state queued|running|completed|failed|cancelled] [--limit N] [--json]
       homelab images status ID
       homelab images cancel ID

  generate   submits an image job (images.jobs.submit), shows its progress from its events (stream IMAGES),
             and writes the image(s) from the object store to FILE (FILE-2.png… for more than one); Ctrl-C cancels it
  jobs       the newest jobs and their state
  status     one job's record (JSON)
  cancel     cancels a job: at once while it waits, by interrupting ComfyUI while it runs
Exit code: 0 done; 1 the job failed or was cancelled, or the lab refused the request; 2 the lab did not answer;
64 wrong command line.
`;

/** Where the command writes: process.stdout / process.stderr, or anything with `write`. */
export interface Writer { write(text: string): unknown; isTTY?: boolean }
interface Streams { out: Writer; err: Writer }

export const images: Command = {
  name: 'images',
  summary: 'image jobs: generate PROMPT -o file.png (with progress), jobs, status ID, cancel ID',
  usage: IMAGES_USAGE,
  // Every subcommand's options (each subcommand parses its own): unknown ones are refused here first.
  options: {
    output: { type: 'string', short: 'o' }, model: { type: 'string', short: 'm' }, size: { type: 'string' }, n: { type: 'string', short: 'n' },
    steps: { type: 'string' }, seed: { type: 'string' }, negative: { type: 'string' }, 'local-only': { type: 'boolean' },
    state: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' },
  },
  positionals: true,
  async run({ args, out, err, env }) {
    const nc = await connectToLab(env, 'scripts');
    try {
      return await imagesCommand(nc, args, out, err);
    } finally {
      await nc.close();
    }
  },
};

/** `homelab images …`. Returns the exit code. */
export async function imagesCommand(nc: NatsConnection, args: string[], out: Streams['out'], err: Streams['err'], signal?: AbortSignal): Promise<number> {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case 'generate': return await generate(nc, rest, { out, err }, signal);
      case 'jobs': return await jobs(nc, rest, out);
      case 'status': {
        if (!rest[0]) break;
        out.write(`${JSON.stringify(await request(nc, imageJobStatusSubject(rest[0]), undefined), null, 2)}\n`);
        return 0;
      }
      case 'cancel': {
        if (!rest[0]) break;
        const r = await request<{ id: string; state: string; cancelRequested: boolean }>(nc, imageJobCancelSubject(rest[0]), undefined);
        out.write(r.state === 'cancelled' ? `${r.id}: cancelled\n` : r.cancelRequested ? `${r.id}: ${r.state}; interrupting it at the backend\n` : `${r.id}: already ${r.state}\n`);
        return 0;
      }
      case 'help': case '--help': case '-h':
        out.write(IMAGES_USAGE);
        return 0;
      default:
        break;
    }
  } catch (e) {
    err.write(`${(e as Error).message}\n`);
    return (e as { exitCode?: number }).exitCode ?? ((e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? Exit.usage : Exit.unreachable);
  }
  err.write(IMAGES_USAGE);
  return Exit.usage;
}

async function generate(nc: NatsConnection, args: string[], io: Streams, signal?: AbortSignal): Promise<number> {
  const { values, positionals } = parseArgs({
    args, allowPositionals: true,
    options: {
      output: { type: 'string', short: 'o' }, model: { type: 'string', short: 'm' }, size: { type: 'string' }, n: { type: 'string', short: 'n' },
      steps: { type: 'string' }, seed: { type: 'string' }, negative: { type: 'string' }, 'local-only': { type: 'boolean' },
    },
  });
  const prompt = positionals.join(' ').trim();
  if (!prompt) { io.err.write(IMAGES_USAGE); return Exit.usage; }
  const int = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw Object.assign(new Error(`--${name} must be a whole number, not '${v}'`), { exitCode: Exit.usage });
    return n;
  };
  const body = {
    prompt, ...(values.model && { model: values.model }), ...(values.size && { size: values.size }), ...(values.negative && { negative_prompt: values.negative }),
    ...(int('n', values.n) !== undefined && { n: int('n', values.n) }), ...(int('steps', values.steps) !== undefined && { steps: int('steps', values.steps) }),
    ...(int('seed', values.seed) !== undefined && { seed: int('seed', values.seed) }),
  };
  const headers = values['local-only'] ? { 'x-homelab-route': 'local-only' } : undefined;
  const job = await request<ImageSubmitReply>(nc, Subjects.imagesSubmit.subject, body, headers);
  io.err.write(`job ${job.id}: ${job.model} on ${job.backend}${job.position ? `, ${job.position} ahead of it` : ''}\n`);

  const bar = new ProgressBar(io.err);
  const consumer = await jetstream(nc).consumers.get('IMAGES', { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(Date.parse(job.submittedAt) - 1000).toISOString() });
  const messages = await consumer.consume();
  // Ctrl-C cancels the job; the loop then ends with its `cancelled` event.
  const onAbort = (): void => { void request(nc, imageJobCancelSubject(job.id), undefined).catch(() => undefined); };
  signal?.addEventListener('abort', onAbort, { once: true });
  const interrupt = signal ? undefined : onAbort;
  if (interrupt) process.once('SIGINT', interrupt);
  let end: { kind: string; data: Record<string, unknown> } | undefined;
  try {
    for await (const m of messages as AsyncIterable<JsMsg>) {
      if (!m.subject.endsWith(`.${job.id}`)) continue;
      const kind = m.subject.split('.')[1]!;
      const data = m.json<Record<string, unknown>>();
      if (kind === 'started' && Number(data['attempt']) > 1) bar.note(`taken over by another worker (attempt ${String(data['attempt'])})`);
      if (kind === 'progress') bar.update(Number(data['percent']), Number(data['step']), Number(data['of']), data['nodeType'] as string | undefined);
      if (kind === 'completed' || kind === 'failed' || kind === 'cancelled') { end = { kind, data }; break; }
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (interrupt) process.off('SIGINT', interrupt);
    await messages.close();
  }
  bar.done();
  if (!end || end.kind === 'cancelled') { io.err.write(`job ${job.id} was cancelled\n`); return 1; }
  if (end.kind === 'failed') {
    const error = end.data['error'] as { message: string; code: string };
    io.err.write(`job ${job.id} failed: ${error.message} (${error.code})\n`);
    return 1;
  }
  const images = end.data['images'] as { id: string; contentType: string }[];
  const store = await new Objm(nc).open(IMAGES_BUCKET);
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const written: string[] = [];
  for (const [i, image] of images.entries()) {
    const data = await readObjectByName(jsm, store, image.id);
    if (!data) throw Object.assign(new Error(`image ${image.id} is not in the object store (expired?)`), { exitCode: 1 });
    const file = outputName(values.output ?? `${job.id}.${image.contentType.split('/')[1] ?? 'png'}`, i);
    writeFileSync(file, data);
    written.push(file);
  }
  io.out.write(`${written.join('\n')}\n`);
  return 0;
}

/** `out.png`, `out-2.png`, `out-3.png`… */
export function outputName(base: string, index: number): string {
  if (index === 0) return base;
  const ext = extname(base);
  return `${base.slice(0, base.length - ext.length)}-${index + 1}${ext}`;
}

async function jobs(nc: NatsConnection, args: string[], out: Streams['out']): Promise<number> {
  const { values } = parseArgs({ args, options: { state: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } } });
  const list = await request<{ jobs: ImageJobRecord[] }>(nc, Subjects.imagesList.subject, {
    ...(values.state && { state: values.state }), ...(values.limit && { limit: Number(values.limit) }),
  });
  if (values.json) { out.write(`${JSON.stringify(list.jobs, null, 2)}\n`); return 0; }
  if (list.jobs.length === 0) { out.write('no image jobs\n'); return 0; }
  out.write(formatJobs(list.jobs));
  return 0;
}

export function formatJobs(records: readonly ImageJobRecord[]): string {
  const rows = records.map((r) => [
    r.id, r.state + (r.cancelRequested && r.state === 'running' ? ' (cancelling)' : ''), `${r.backend}/${r.model}`, r.submittedAt.replace('T', ' ').slice(0, 19),
    r.state === 'running' && r.progress ? `${Math.round(r.progress.percent)}%` : r.state === 'completed' ? `${r.images?.length ?? 0} image(s)` : r.error ? r.error.message.slice(0, 60) : '',
  ]);
  const header = ['JOB', 'STATE', 'MODEL', 'SUBMITTED (UTC)', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

/** A progress bar on a terminal; lines at every tenth otherwise (logs, pipes). */
export class ProgressBar {
  readonly #err: Streams['err'];
  #lastTenth = -1;
  #drawn = false;

  constructor(err: Streams['err']) {
    this.#err = err;
  }

  update(percent: number, step: number, of: number, node?: string): void {
    const label = `${String(Math.round(percent)).padStart(3)}% step ${step}/${of}${node ? ` ${node}` : ''}`;
    if (this.#err.isTTY) {
      const filled = Math.round((Math.max(0, Math.min(100, percent)) / 100) * 30);
      this.#err.write(`\r[${'#'.repeat(filled)}${'-'.repeat(30 - filled)}] ${label}`);
      this.#drawn = true;
      return;
    }
    const tenth = Math.floor(percent / 10);
    if (tenth === this.#lastTenth) return;
    this.#lastTenth = tenth;
    this.#err.write(`${label}\n`);
  }

  note(text: string): void {
    this.done();
    this.#err.write(`${text}\n`);
  }

  done(): void {
    if (this.#drawn) this.#err.write('\n');
    this.#drawn = false;
  }
}

async function request<T>(nc: NatsConnection, subject: string, body: unknown, headerValues?: Record<string, string>): Promise<T> {
  const h = headerValues ? createHeaders() : undefined;
  for (const [k, v] of Object.entries(headerValues ?? {})) h!.set(k, v);
  let reply;
  try {
    reply = await nc.request(subject, body === undefined ? undefined : JSON.stringify(body), { timeout: 10_000, ...(h && { headers: h }) });
  } catch (e) {
    const text = `${(e as Error).message} ${String((e as { code?: string }).code ?? '')}`;
    throw Object.assign(new Error(/no responders|503/i.test(text) ? 'the router is not running (nothing answers the images API)' : `the lab did not answer ${subject}: ${(e as Error).message}`), { exitCode: Exit.unreachable });
  }
  const error = errorFromReply(reply.headers, reply.data);
  // A job that does not exist is an answer (1); anything else refused is a usage error (2).
  if (error) throw Object.assign(new Error(`${error.message} (${error.code}, ${error.status})`), { exitCode: Exit.problem });
  return JSON.parse(reply.string()) as T;
}
