import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  executionOrder, nodeClasses, objectInfo, validatePrompt, type ApiWorkflow, type NodeClass,
} from './comfyui-nodes.ts';
import { multipartBoundary, parseMultipart } from './multipart.ts';
import { encodePng, pngSize, seededImage } from './png.ts';
import { sendJson, sleep } from './sim.ts';

/*
 * A ComfyUI server on 127.0.0.1, in ComfyUI's wire format (server.py, execution.py, main.py):
 *   POST /prompt (validation → 400 with `error` and `node_errors`), GET /prompt, GET|POST /queue,
 *   POST /interrupt (all, or `{prompt_id}` only when it runs), GET /history[/{id}], POST /history,
 *   GET /view, POST /upload/image, GET /system_stats, GET /object_info[/{class}], every route also under /api;
 *   the websocket /ws?clientId= with ComfyUI's JSON messages (status, execution_start, execution_cached,
 *   executing, progress, executed, execution_success, execution_error, execution_interrupted) and binary
 *   preview frames (4-byte big-endian event type 1, 4-byte image type 1 JPEG / 2 PNG, the image).
 * One prompt runs at a time, the rest wait in order of their number, as in ComfyUI. Outputs are real
 * PNGs of the requested size. Faults: an exception in a node, out of GPU memory, dropped websockets, and
 * a restart that loses the queue and the history (as a real restart does; files on disk stay).
 */

export interface ComfyUIFaults {
  /** The next `count` prompts (default: all) that contain a node of this class fail in it with an execution_error. */
  errorInNode?: { classType: string; message?: string; exceptionType?: string; count?: number };
  /** The sampler of the next `count` prompts (default 1) runs out of GPU memory after its first step. */
  outOfMemory?: { count?: number };
  /** Once, when a sampler reaches this step, every websocket is closed (the prompt goes on running). */
  dropWebSocketsAtStep?: number;
  /** Hold every prompt before its first node until `release()` (a GPU busy with something else). */
  hold?: boolean;
}

export interface ComfyUISimulatorOptions {
  /** Port on 127.0.0.1; 0 (default) picks a free one (kept across `restart`). */
  port?: number;
  /** Time per sampler step (default 20 ms): the pace of `progress` messages. */
  stepIntervalMs?: number;
  /** Time per other node (default 2 ms). */
  nodeIntervalMs?: number;
  /** The checkpoints in models/checkpoints (CheckpointLoaderSimple's list). */
  checkpoints?: string[];
  /** Send a preview frame with each sampler step (ComfyUI's `--preview-method`); default true. */
  previews?: boolean;
  vramTotalBytes?: number;
  faults?: ComfyUIFaults;
}

/** What happened to one prompt, for tests. */
export interface ComfyPromptRecord {
  promptId: string;
  clientId: string | undefined;
  number: number;
  workflow: ApiWorkflow;
  status: 'pending' | 'running' | 'success' | 'error' | 'interrupted' | 'deleted' | 'lost';
  /** Sampler steps run. */
  steps: number;
}

export interface ComfyUISimulator {
  readonly url: string;
  readonly port: number;
  /** Every prompt accepted, in order (restarts included). */
  readonly prompts: ComfyPromptRecord[];
  /** Every HTTP request line, e.g. `POST /prompt`. */
  readonly requests: string[];
  /** Websocket connections opened so far (reconnections count). */
  readonly wsConnections: number;
  setFaults(faults: ComfyUIFaults): void;
  setOptions(options: Pick<ComfyUISimulatorOptions, 'stepIntervalMs' | 'nodeIntervalMs' | 'previews'>): void;
  /** Lets held prompts run (fault `hold`). */
  release(): void;
  /** Stops as ComfyUI would on a restart (queue, history and the running prompt lost), then listens again on the same port. */
  restart(options?: { downMs?: number }): Promise<void>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

type QueueItem = [number, string, ApiWorkflow, Record<string, unknown>, string[]];
interface HistoryEntry {
  prompt: QueueItem;
  outputs: Record<string, { images: ImageRef[] }>;
  status: { status_str: 'success' | 'error'; completed: boolean; messages: [string, Record<string, unknown>][] };
  meta: Record<string, { node_id: string; display_node: string; parent_node: null; real_node_id: string }>;
}
interface ImageRef { filename: string; subfolder: string; type: 'output' | 'temp' | 'input' }
/** What a node produced, as far as the simulation needs: the picture's size, batch and seed. */
interface Value { width: number; height: number; batch: number; seed: number }

const VERSION = '0.3.66';
const DEFAULT_CHECKPOINTS = ['sd_xl_base_1.0.safetensors', 'v1-5-pruned-emaonly.safetensors', 'sd3.5_medium.safetensors'];
const GIB = 1024 ** 3;
const EVENT_PREVIEW_IMAGE = 1;
const IMAGE_TYPE_PNG = 2;

export async function startComfyUISimulator(initial: ComfyUISimulatorOptions = {}): Promise<ComfyUISimulator> {
  const options = {
    stepIntervalMs: initial.stepIntervalMs ?? 20,
    nodeIntervalMs: initial.nodeIntervalMs ?? 2,
    previews: initial.previews ?? true,
  };
  const checkpoints = initial.checkpoints ?? DEFAULT_CHECKPOINTS;
  const vramTotal = initial.vramTotalBytes ?? 24 * GIB;
  let faults: ComfyUIFaults = { ...initial.faults };
  const prompts: ComfyPromptRecord[] = [];
  const requests: string[] = [];
  /** Files on "disk" (input uploads, outputs): they survive a restart. Key `type/subfolder/filename`. */
  const files = new Map<string, Buffer>();
  let saveCounter = 1;

  // State a restart loses.
  let pending: QueueItem[] = [];
  let running: QueueItem | undefined;
  let history = new Map<string, HistoryEntry>();
  let number = 0;
  let interruptRequested = false;
  let lastNodeId: string | null = null;
  let executingClient: string | undefined;
  let generation = 0;
  let wakeWorker: (() => void) | undefined;
  let releaseHold: (() => void) | undefined;
  let modelLoaded = false;
  /** Node signatures and values of the previous prompt: ComfyUI skips unchanged nodes (execution_cached). */
  let cache = new Map<string, { signature: string; value: Value | undefined }>();

  const sockets = new Map<string, WebSocket>();
  let wsConnections = 0;
  const tcpSockets = new Set<Socket>();
  const wss = new WebSocketServer({ noServer: true });

  const inputFiles = (): string[] => [...files.keys()].filter((k) => k.startsWith('input/')).map((k) => {
    const [, subfolder, filename] = splitKey(k);
    return subfolder ? `${subfolder}/${filename}` : filename;
  });
  const classes = (): Record<string, NodeClass> => nodeClasses(checkpoints, inputFiles());
  const queueInfo = (): Record<string, unknown> => ({ exec_info: { queue_remaining: pending.length + (running ? 1 : 0) } });

  function send(type: string, data: Record<string, unknown>, sid?: string): void {
    const text = JSON.stringify({ type, data });
    if (sid === undefined) for (const ws of sockets.values()) ws.send(text);
    else sockets.get(sid)?.send(text);
  }
  function sendBytes(event: number, payload: Buffer, sid: string | undefined): void {
    if (sid === undefined) return;
    const header = Buffer.alloc(4);
    header.writeUInt32BE(event, 0);
    sockets.get(sid)?.send(Buffer.concat([header, payload]));
  }
  const queueUpdated = (): void => send('status', { status: queueInfo() });

  // ------------------------------------------------------------------ the prompt worker (main.py's prompt_worker)

  async function workerLoop(myGeneration: number): Promise<void> {
    while (myGeneration === generation) {
      const next = pending.sort((a, b) => a[0] - b[0]).shift();
      if (!next) {
        await new Promise<void>((resolve) => { wakeWorker = resolve; });
        wakeWorker = undefined;
        continue;
      }
      running = next;
      queueUpdated();
      await execute(next, myGeneration);
      if (myGeneration !== generation) return;
      running = undefined;
      queueUpdated();
    }
  }

  async function execute(item: QueueItem, myGeneration: number): Promise<void> {
    const [, promptId, workflow, extra, outputs] = item;
    const record = prompts.find((p) => p.promptId === promptId)!;
    record.status = 'running';
    const clientId = typeof extra['client_id'] === 'string' ? extra['client_id'] : undefined;
    executingClient = clientId;
    interruptRequested = false;
    const messages: HistoryEntry['status']['messages'] = [];
    const message = (type: string, data: Record<string, unknown>): void => {
      messages.push([type, data]);
      send(type, data, clientId);
    };
    const stillOurs = (): boolean => myGeneration === generation;
    message('execution_start', { prompt_id: promptId, timestamp: Date.now() });

    const order = executionOrder(workflow, outputs);
    const signatures = new Map<string, string>();
    for (const id of order) signatures.set(id, nodeSignature(workflow, id, signatures));
    const cached = order.filter((id) => !classes()[workflow[id]!.class_type]?.outputNode && cache.get(id)?.signature === signatures.get(id));
    message('execution_cached', { nodes: cached, prompt_id: promptId, timestamp: Date.now() });

    if (faults.hold) await new Promise<void>((resolve) => { releaseHold = resolve; });
    if (!stillOurs()) return;

    const values = new Map<string, Value | undefined>();
    for (const id of cached) values.set(id, cache.get(id)!.value);
    const outputsUi: HistoryEntry['outputs'] = {};
    const executed: string[] = [];
    const fail = (id: string, type: 'execution_error' | 'execution_interrupted', extraData: Record<string, unknown>): void => {
      message(type, { prompt_id: promptId, node_id: id, node_type: workflow[id]!.class_type, executed: [...executed], ...extraData, timestamp: Date.now() });
      record.status = type === 'execution_error' ? 'error' : 'interrupted';
    };
    let failed = false;
    for (const id of order) {
      if (cached.includes(id)) continue;
      const node = workflow[id]!;
      if (interruptRequested) { fail(id, 'execution_interrupted', {}); failed = true; break; }
      lastNodeId = id;
      send('executing', { node: id, display_node: id, prompt_id: promptId }, clientId);
      const error = nodeFault(node.class_type);
      if (error) {
        fail(id, 'execution_error', {
          exception_message: error.message, exception_type: error.type,
          traceback: ['  File "/comfy/execution.py", line 277, in get_output_data\n', `  File "/comfy/nodes.py", line 1, in ${node.class_type}\n`],
          current_inputs: {}, current_outputs: {},
        });
        failed = true;
        break;
      }
      const inputs = (name: string): Value | undefined => {
        const link = node.inputs[name];
        return Array.isArray(link) ? values.get(String(link[0])) : undefined;
      };
      let value: Value | undefined;
      switch (node.class_type) {
        case 'CheckpointLoaderSimple':
          if (!modelLoaded) await sleep(options.nodeIntervalMs * 5);
          modelLoaded = true;
          break;
        case 'EmptyLatentImage':
          value = { width: Number(node.inputs['width']), height: Number(node.inputs['height']), batch: Number(node.inputs['batch_size']), seed: 0 };
          break;
        case 'LoadImage': {
          const data = files.get(inputKey(String(node.inputs['image'])));
          const size = data ? pngSize(data) : undefined;
          value = { width: size?.width ?? 512, height: size?.height ?? 512, batch: 1, seed: 0 };
          break;
        }
        case 'ImageScale':
          value = { ...(inputs('image') ?? { batch: 1, seed: 0 }), width: Number(node.inputs['width']), height: Number(node.inputs['height']) } as Value;
          break;
        case 'KSampler': {
          const latent = inputs('latent_image') ?? { width: 512, height: 512, batch: 1, seed: 0 };
          const steps = Number(node.inputs['steps']);
          const seed = Number(node.inputs['seed']);
          const outcome = await sample(id, steps, latent, seed, promptId, clientId, record, stillOurs);
          if (!stillOurs()) return;
          if (outcome === 'interrupted') { fail(id, 'execution_interrupted', {}); failed = true; break; }
          if (outcome === 'oom') {
            fail(id, 'execution_error', {
              exception_message: 'Allocation on device 0 would exceed allowed memory. (out of memory)\nCurrently allocated     : 21.84 GiB\nRequested               : 4.00 GiB\nDevice limit            : 23.99 GiB\nFree (according to CUDA): 0 bytes',
              exception_type: 'torch.OutOfMemoryError',
              traceback: ['  File "/comfy/comfy/samplers.py", line 1051, in sample\n'], current_inputs: {}, current_outputs: {},
            });
            failed = true;
            break;
          }
          value = { ...latent, seed };
          break;
        }
        case 'SaveImage':
        case 'PreviewImage': {
          const picture = inputs('images') ?? { width: 512, height: 512, batch: 1, seed: 0 };
          const images: ImageRef[] = [];
          const type = node.class_type === 'SaveImage' ? 'output' : 'temp';
          const prefix = String(node.inputs['filename_prefix'] ?? 'ComfyUI_temp');
          const slash = prefix.lastIndexOf('/');
          const subfolder = slash >= 0 ? prefix.slice(0, slash) : '';
          const base = slash >= 0 ? prefix.slice(slash + 1) : prefix;
          for (let i = 0; i < picture.batch; i++) {
            const filename = `${base}_${String(saveCounter++).padStart(5, '0')}_.png`;
            files.set(fileKey(type, subfolder, filename), encodePng(seededImage(picture.width, picture.height, picture.seed + i)));
            images.push({ filename, subfolder, type });
          }
          outputsUi[id] = { images };
          await sleep(options.nodeIntervalMs);
          send('executed', { node: id, display_node: id, output: { images }, prompt_id: promptId }, clientId);
          break;
        }
        default:
          value = firstLinkedValue(node, values);
          await sleep(options.nodeIntervalMs);
      }
      if (failed) break;
      if (!stillOurs()) return;
      values.set(id, value);
      executed.push(id);
    }
    if (!stillOurs()) return;
    // What ran is what the next prompt may reuse.
    cache = new Map(order.filter((id) => values.has(id)).map((id) => [id, { signature: signatures.get(id)!, value: values.get(id) }]));
    if (!failed) {
      message('execution_success', { prompt_id: promptId, timestamp: Date.now() });
      record.status = 'success';
    }
    history.set(promptId, {
      prompt: item, outputs: outputsUi,
      status: { status_str: failed ? 'error' : 'success', completed: !failed, messages },
      meta: Object.fromEntries(Object.keys(outputsUi).map((id) => [id, { node_id: id, display_node: id, parent_node: null, real_node_id: id }])),
    });
    lastNodeId = null;
    executingClient = undefined;
    send('executing', { node: null, prompt_id: promptId }, clientId);
  }

  async function sample(
    nodeId: string, steps: number, latent: Value, seed: number, promptId: string, clientId: string | undefined, record: ComfyPromptRecord, stillOurs: () => boolean,
  ): Promise<'done' | 'interrupted' | 'oom'> {
    for (let step = 1; step <= steps; step++) {
      await sleep(options.stepIntervalMs);
      if (!stillOurs()) return 'interrupted';
      if (interruptRequested) return 'interrupted';
      record.steps++;
      if (step === 2 || steps === 1) {
        const oom = faults.outOfMemory;
        if (oom && (oom.count ?? 1) > 0) {
          faults = { ...faults, outOfMemory: { count: (oom.count ?? 1) - 1 } };
          return 'oom';
        }
      }
      send('progress', { value: step, max: steps, prompt_id: promptId, node: nodeId }, clientId);
      if (options.previews) {
        // Latent previews are an eighth of the image's size, as ComfyUI's latent2rgb previews are.
        const preview = encodePng(seededImage(Math.max(8, Math.round(latent.width / 8)), Math.max(8, Math.round(latent.height / 8)), seed, step / steps));
        const format = Buffer.alloc(4);
        format.writeUInt32BE(IMAGE_TYPE_PNG, 0);
        sendBytes(EVENT_PREVIEW_IMAGE, Buffer.concat([format, preview]), clientId);
      }
      if (faults.dropWebSocketsAtStep === step) {
        faults = { ...faults, dropWebSocketsAtStep: undefined };
        for (const ws of sockets.values()) ws.terminate();
      }
    }
    return 'done';
  }

  function nodeFault(classType: string): { message: string; type: string } | undefined {
    const fault = faults.errorInNode;
    if (!fault || fault.classType !== classType || (fault.count !== undefined && fault.count <= 0)) return undefined;
    if (fault.count !== undefined) faults = { ...faults, errorInNode: { ...fault, count: fault.count - 1 } };
    return { message: fault.message ?? `Error while running ${classType}`, type: fault.exceptionType ?? 'RuntimeError' };
  }

  // ------------------------------------------------------------------ HTTP (server.py's routes)

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://comfyui');
    const path = url.pathname.startsWith('/api/') ? url.pathname.slice(4) : url.pathname;
    requests.push(`${req.method} ${path}`);
    const route = `${req.method} ${path}`;
    if (route === 'GET /system_stats') return sendJson(res, 200, systemStats());
    if (route === 'GET /prompt') return sendJson(res, 200, queueInfo());
    if (route === 'GET /queue') return sendJson(res, 200, { queue_running: running ? [running] : [], queue_pending: [...pending].sort((a, b) => a[0] - b[0]) });
    if (route === 'GET /object_info') return sendJson(res, 200, Object.fromEntries(Object.entries(classes()).map(([name, cls]) => [name, objectInfo(name, cls)])));
    if (req.method === 'GET' && path.startsWith('/object_info/')) {
      const name = decodeURIComponent(path.slice('/object_info/'.length));
      const cls = classes()[name];
      return sendJson(res, 200, cls ? { [name]: objectInfo(name, cls) } : {});
    }
    if (route === 'GET /history') {
      const max = Number(url.searchParams.get('max_items') ?? Number.NaN);
      const entries = [...history.entries()];
      return sendJson(res, 200, Object.fromEntries(Number.isFinite(max) ? entries.slice(-max) : entries));
    }
    if (req.method === 'GET' && path.startsWith('/history/')) {
      const id = decodeURIComponent(path.slice('/history/'.length));
      const entry = history.get(id);
      return sendJson(res, 200, entry ? { [id]: entry } : {});
    }
    if (route === 'GET /view') return view(url, res);
    if (route === 'POST /prompt') return postPrompt(req, res);
    if (route === 'POST /queue') {
      const body = await readJson(req);
      if (body === undefined) return sendText(res, 400, 'invalid JSON');
      if ((body as { clear?: boolean }).clear) {
        for (const item of pending) markDeleted(item[1]);
        pending = [];
      }
      const ids = (body as { delete?: unknown }).delete;
      if (Array.isArray(ids)) {
        for (const id of ids) {
          if (pending.some((item) => item[1] === id)) markDeleted(String(id));
          pending = pending.filter((item) => item[1] !== id);
        }
      }
      queueUpdated();
      res.writeHead(200, { 'content-length': 0 }).end();
      return;
    }
    if (route === 'POST /interrupt') {
      const body = (await readJson(req)) as { prompt_id?: string } | undefined;
      // A targeted interrupt (newer ComfyUI) stops only that prompt, and only while it runs.
      if (!body?.prompt_id || running?.[1] === body.prompt_id) interruptRequested = true;
      res.writeHead(200, { 'content-length': 0 }).end();
      return;
    }
    if (route === 'POST /history') {
      const body = (await readJson(req)) as { clear?: boolean; delete?: string[] } | undefined;
      if (body?.clear) history.clear();
      for (const id of body?.delete ?? []) history.delete(id);
      res.writeHead(200, { 'content-length': 0 }).end();
      return;
    }
    if (route === 'POST /upload/image') return upload(req, res);
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404: Not Found');
  }

  async function postPrompt(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req);
    if (!body || typeof body !== 'object') return sendText(res, 400, 'invalid JSON');
    const data = body as { prompt?: unknown; client_id?: unknown; prompt_id?: unknown; number?: unknown; front?: unknown; extra_data?: Record<string, unknown> };
    let promptNumber: number;
    if (data.number !== undefined) promptNumber = Number(data.number);
    else {
      promptNumber = data.front ? -number : number;
      number++;
    }
    if (data.prompt === undefined) {
      return sendJson(res, 400, { error: { type: 'no_prompt', message: 'No prompt provided', details: 'No prompt provided', extra_info: {} }, node_errors: {} });
    }
    const promptId = typeof data.prompt_id === 'string' && data.prompt_id ? data.prompt_id : randomUUID();
    const valid = validatePrompt(data.prompt, classes());
    if (!valid.ok) return sendJson(res, 400, { error: valid.error, node_errors: valid.nodeErrors });
    const extra: Record<string, unknown> = { ...data.extra_data };
    if (data.client_id !== undefined) extra['client_id'] = data.client_id;
    const workflow = data.prompt as ApiWorkflow;
    pending.push([promptNumber, promptId, workflow, extra, valid.outputs]);
    prompts.push({ promptId, clientId: typeof data.client_id === 'string' ? data.client_id : undefined, number: promptNumber, workflow, status: 'pending', steps: 0 });
    queueUpdated();
    wakeWorker?.();
    sendJson(res, 200, { prompt_id: promptId, number: promptNumber, node_errors: {} });
  }

  function view(url: URL, res: ServerResponse): void {
    const filename = url.searchParams.get('filename');
    if (filename === null) return void res.writeHead(404).end();
    if (filename.startsWith('/') || filename.includes('..')) return void res.writeHead(400).end();
    const type = url.searchParams.get('type') ?? 'output';
    if (!['output', 'input', 'temp'].includes(type)) return void res.writeHead(400).end();
    const subfolder = url.searchParams.get('subfolder') ?? '';
    if (subfolder.includes('..') || subfolder.startsWith('/')) return void res.writeHead(403).end();
    const data = files.get(fileKey(type, subfolder, filename.split('/').pop()!));
    if (!data) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': data.length, 'content-disposition': `filename="${filename}"` });
    res.end(data);
  }

  async function upload(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const boundary = multipartBoundary(req.headers['content-type']);
    const body = await readBody(req);
    if (!boundary) return void res.writeHead(400).end();
    let parts;
    try { parts = parseMultipart(body, boundary); } catch { return void res.writeHead(400).end(); }
    const field = (name: string): string | undefined => parts.find((p) => p.name === name && p.filename === undefined)?.data.toString('utf8');
    const image = parts.find((p) => p.name === 'image' && p.filename !== undefined);
    if (!image?.filename) return void res.writeHead(400).end();
    const type = field('type') ?? 'input';
    if (!['input', 'temp', 'output'].includes(type)) return void res.writeHead(400).end();
    const subfolder = field('subfolder') ?? '';
    if (subfolder.includes('..') || subfolder.startsWith('/') || image.filename.includes('/') || image.filename.includes('..')) return void res.writeHead(400).end();
    let filename = image.filename;
    const overwrite = field('overwrite');
    if (overwrite !== 'true' && overwrite !== '1') {
      const dot = filename.lastIndexOf('.');
      const [stem, ext] = dot > 0 ? [filename.slice(0, dot), filename.slice(dot)] : [filename, ''];
      for (let i = 1; files.has(fileKey(type, subfolder, filename)) && !files.get(fileKey(type, subfolder, filename))!.equals(image.data); i++) filename = `${stem} (${i})${ext}`;
    }
    files.set(fileKey(type, subfolder, filename), image.data);
    sendJson(res, 200, { name: filename, subfolder, type });
  }

  function systemStats(): Record<string, unknown> {
    const used = (modelLoaded ? 7 * GIB : 0) + (running ? 3 * GIB : 0);
    return {
      system: {
        os: 'posix', ram_total: 64 * GIB, ram_free: 40 * GIB, comfyui_version: VERSION,
        python_version: '3.12.3 (main, Jun 18 2025, 17:59:45) [GCC 13.3.0]', pytorch_version: '2.8.0+cu128', embedded_python: false, argv: ['main.py', '--listen', '0.0.0.0'],
      },
      devices: [{ name: 'cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync', type: 'cuda', index: 0, vram_total: vramTotal, vram_free: vramTotal - used, torch_vram_total: used, torch_vram_free: GIB / 2 }],
    };
  }

  function markDeleted(promptId: string): void {
    const record = prompts.find((p) => p.promptId === promptId);
    if (record) record.status = 'deleted';
  }

  // ------------------------------------------------------------------ the server, and its restart

  let server: Server | undefined;
  let port = initial.port ?? 0;

  const listen = async (): Promise<void> => {
    generation++;
    const srv = createServer((req, res) => {
      handle(req, res).catch((err: unknown) => { if (!res.headersSent) sendText(res, 500, String(err)); else res.destroy(); });
    });
    srv.on('connection', (s) => { tcpSockets.add(s); s.on('close', () => tcpSockets.delete(s)); });
    srv.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'http://comfyui');
      if (url.pathname !== '/ws' && url.pathname !== '/api/ws') { socket.destroy(); return; }
      wss.handleUpgrade(req, socket, head, (ws) => {
        wsConnections++;
        const sid = url.searchParams.get('clientId') || randomUUID().replace(/-/g, '');
        // Reusing a session: the old socket no longer gets messages.
        sockets.set(sid, ws);
        ws.send(JSON.stringify({ type: 'status', data: { status: queueInfo(), sid } }));
        if (executingClient === sid && lastNodeId !== null) ws.send(JSON.stringify({ type: 'executing', data: { node: lastNodeId } }));
        ws.on('close', () => { if (sockets.get(sid) === ws) sockets.delete(sid); });
        ws.on('error', () => { /* a client that vanished */ });
      });
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => resolve());
    });
    port = (srv.address() as AddressInfo).port;
    server = srv;
    void workerLoop(generation);
  };

  const shutdown = async (): Promise<void> => {
    generation++;
    wakeWorker?.();
    releaseHold?.();
    for (const ws of sockets.values()) ws.terminate();
    sockets.clear();
    for (const s of tcpSockets) s.destroy();
    const srv = server;
    server = undefined;
    if (srv) await new Promise<void>((resolve) => srv.close(() => resolve()));
  };

  await listen();
  const sim: ComfyUISimulator = {
    get url() { return `http://127.0.0.1:${port}`; },
    get port() { return port; },
    prompts,
    requests,
    get wsConnections() { return wsConnections; },
    setFaults(f) { faults = { ...f }; },
    setOptions(o) { Object.assign(options, Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined))); },
    release() {
      faults = { ...faults, hold: false };
      releaseHold?.();
      releaseHold = undefined;
    },
    async restart({ downMs = 0 } = {}) {
      await shutdown();
      for (const item of [...pending, ...(running ? [running] : [])]) {
        const record = prompts.find((p) => p.promptId === item[1]);
        if (record) record.status = 'lost';
      }
      pending = [];
      running = undefined;
      history = new Map();
      cache = new Map();
      number = 0;
      lastNodeId = null;
      executingClient = undefined;
      modelLoaded = false;
      if (downMs > 0) await sleep(downMs);
      await listen();
    },
    close: shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
  return sim;
}

/** A node's identity for caching: its class, its literal inputs, and the identities of what it links to. */
function nodeSignature(workflow: ApiWorkflow, id: string, known: Map<string, string>): string {
  const node = workflow[id]!;
  const inputs = Object.entries(node.inputs ?? {}).map(([k, v]) => [k, Array.isArray(v) && v.length === 2 ? `link:${known.get(String(v[0])) ?? String(v[0])}:${String(v[1])}` : v]);
  return JSON.stringify([node.class_type, inputs]);
}

function firstLinkedValue(node: ApiWorkflow[string], values: Map<string, Value | undefined>): Value | undefined {
  for (const v of Object.values(node.inputs ?? {})) {
    if (Array.isArray(v) && v.length === 2 && values.get(String(v[0]))) return values.get(String(v[0]));
  }
  return undefined;
}

function fileKey(type: string, subfolder: string, filename: string): string {
  return `${type}/${subfolder}/${filename}`;
}

function splitKey(key: string): [string, string, string] {
  const first = key.indexOf('/');
  const last = key.lastIndexOf('/');
  return [key.slice(0, first), key.slice(first + 1, last), key.slice(last + 1)];
}

/** LoadImage's `image` value: `name.png` or `subfolder/name.png`, in the input folder. */
function inputKey(value: string): string {
  const slash = value.lastIndexOf('/');
  return fileKey('input', slash >= 0 ? value.slice(0, slash) : '', slash >= 0 ? value.slice(slash + 1) : value);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const body = await readBody(req);
  if (body.length === 0) return {};
  try { return JSON.parse(body.toString('utf8')); } catch { return undefined; }
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) }).end(text);
}
