import WebSocket from 'ws';
import { GatewayError } from '@homelab/bus';

/*
 * ComfyUI's HTTP API and websocket, as this worker uses them (docs/images.md lists what it relies on):
 * POST /prompt, GET /history/{id}, GET /queue, POST /queue {delete}, POST /interrupt, GET /view,
 * POST /upload/image, GET /system_stats, GET /object_info, and /ws?clientId=.
 */

export type ApiWorkflow = Record<string, { class_type: string; inputs: Record<string, unknown>; _meta?: { title?: string } }>;

export interface ComfyImageRef { filename: string; subfolder: string; type: string }

export interface ComfyHistoryEntry {
  outputs?: Record<string, { images?: ComfyImageRef[] }>;
  status?: { status_str?: string; completed?: boolean; messages?: [string, Record<string, unknown>][] };
}

export interface ComfyNodeError { errors?: { type?: string; message?: string; details?: string }[]; class_type?: string; dependent_outputs?: string[] }

/** ComfyUI refused a prompt (400): its `error` and `node_errors`, turned into one readable message. */
export class ComfyValidationError extends GatewayError {
  readonly comfyError: unknown;
  readonly nodeErrors: Record<string, ComfyNodeError>;
  constructor(error: unknown, nodeErrors: Record<string, ComfyNodeError>) {
    super('invalid_request', describeValidation(error, nodeErrors), { param: 'prompt' });
    this.name = 'ComfyValidationError';
    this.comfyError = error;
    this.nodeErrors = nodeErrors;
  }
}

/** `ComfyUI refused the workflow: KSampler (node 3): steps: Value 20000 bigger than max of 10000`. */
export function describeValidation(error: unknown, nodeErrors: Record<string, ComfyNodeError>): string {
  const parts: string[] = [];
  for (const [id, entry] of Object.entries(nodeErrors)) {
    for (const e of entry.errors ?? []) parts.push(`${entry.class_type ?? 'node'} (node ${id}): ${e.details ? `${e.details}: ` : ''}${e.message ?? e.type ?? 'invalid'}`);
  }
  const top = typeof error === 'string' ? error
    : error && typeof error === 'object' ? [(error as { message?: string }).message, (error as { details?: string }).details].filter(Boolean).join(' ')
    : 'invalid prompt';
  return `ComfyUI refused the workflow: ${parts.length > 0 ? parts.slice(0, 5).join('; ') : top}`.slice(0, 1000);
}

export interface ComfyClientOptions {
  connectTimeoutMs: number;
  /** Deadline of one HTTP call (not of a job). */
  requestTimeoutMs?: number;
}

export class ComfyClient {
  readonly baseUrl: string;
  readonly #options: ComfyClientOptions;

  constructor(baseUrl: string, options: ComfyClientOptions) {
    this.baseUrl = baseUrl.replace(/\/$/, '');
    this.#options = options;
  }

  /** Queues a prompt; ComfyUI's 400 (validation) becomes ComfyValidationError. */
  async submit(prompt: ApiWorkflow, clientId: string, promptId: string): Promise<{ promptId: string; number: number }> {
    const res = await this.#fetch('/prompt', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt, client_id: clientId, prompt_id: promptId }) });
    const body = await res.json().catch(() => undefined) as { prompt_id?: string; number?: number; error?: unknown; node_errors?: Record<string, ComfyNodeError> } | undefined;
    if (res.status === 400) throw new ComfyValidationError(body?.error, body?.node_errors ?? {});
    if (!res.ok || !body?.prompt_id) throw new GatewayError('backend_error', `ComfyUI answered POST /prompt with HTTP ${res.status}`);
    // Older ComfyUI versions ignore a client's prompt_id and choose their own.
    return { promptId: body.prompt_id, number: body.number ?? 0 };
  }

  /** The prompt's history entry once it finished; undefined while it waits or runs (or when ComfyUI forgot it). */
  async history(promptId: string): Promise<ComfyHistoryEntry | undefined> {
    const res = await this.#fetch(`/history/${encodeURIComponent(promptId)}`);
    if (!res.ok) throw new GatewayError('backend_error', `ComfyUI answered GET /history with HTTP ${res.status}`);
    const body = await res.json() as Record<string, ComfyHistoryEntry>;
    return body[promptId];
  }

  /** The prompt ids running and waiting now. */
  async queue(): Promise<{ running: string[]; pending: string[] }> {
    const res = await this.#fetch('/queue');
    if (!res.ok) throw new GatewayError('backend_error', `ComfyUI answered GET /queue with HTTP ${res.status}`);
    const body = await res.json() as { queue_running?: unknown[][]; queue_pending?: unknown[][] };
    const ids = (items: unknown[][] | undefined): string[] => (items ?? []).map((i) => String(i[1]));
    return { running: ids(body.queue_running), pending: ids(body.queue_pending) };
  }

  /** Removes a waiting prompt from ComfyUI's queue. */
  async deleteQueued(promptId: string): Promise<void> {
    await this.#fetch('/queue', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ delete: [promptId] }) });
  }

  /**
   * Interrupts the running prompt. The body names it (newer ComfyUI then interrupts only that one);
   * callers check first that it is the one running, since older versions interrupt whatever runs.
   */
  async interrupt(promptId: string): Promise<void> {
    await this.#fetch('/interrupt', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt_id: promptId }) });
  }

  async view(ref: ComfyImageRef, signal?: AbortSignal): Promise<{ data: Uint8Array; contentType: string }> {
    const query = new URLSearchParams({ filename: ref.filename, subfolder: ref.subfolder, type: ref.type });
    const res = await this.#fetch(`/view?${query}`, signal ? { signal } : {});
    if (!res.ok) throw new GatewayError('backend_error', `ComfyUI has no output ${ref.subfolder ? `${ref.subfolder}/` : ''}${ref.filename} (HTTP ${res.status})`);
    return { data: new Uint8Array(await res.arrayBuffer()), contentType: res.headers.get('content-type')?.split(';')[0] ?? 'image/png' };
  }

  /** Uploads an input image into ComfyUI's input folder; returns the value a LoadImage takes (`subfolder/name`). */
  async upload(data: Uint8Array, filename: string, subfolder: string, contentType: string): Promise<string> {
    const form = new FormData();
    form.append('image', new Blob([data as Uint8Array<ArrayBuffer>], { type: contentType }), filename);
    form.append('subfolder', subfolder);
    form.append('type', 'input');
    form.append('overwrite', 'true');
    const res = await this.#fetch('/upload/image', { method: 'POST', body: form });
    if (!res.ok) throw new GatewayError('backend_error', `ComfyUI refused the input image upload (HTTP ${res.status})`);
    const body = await res.json() as { name: string; subfolder?: string };
    return body.subfolder ? `${body.subfolder}/${body.name}` : body.name;
  }

  async systemStats(): Promise<Record<string, unknown>> {
    const res = await this.#fetch('/system_stats');
    if (!res.ok) throw new GatewayError('backend_error', `ComfyUI answered GET /system_stats with HTTP ${res.status}`);
    return await res.json() as Record<string, unknown>;
  }

  /** Every node class ComfyUI has (name → info). */
  async objectInfo(): Promise<Record<string, { input?: { required?: Record<string, unknown>; optional?: Record<string, unknown> } }>> {
    const res = await this.#fetch('/object_info', { timeoutMs: 30_000 });
    if (!res.ok) throw new GatewayError('backend_error', `ComfyUI answered GET /object_info with HTTP ${res.status}`);
    return await res.json() as Record<string, { input?: { required?: Record<string, unknown> } }>;
  }

  /** Opens `/ws?clientId=`; resolves once ComfyUI's first `status` message arrived (from then on, messages for that client come here). */
  openSocket(clientId: string, onFrame: (frame: ComfyFrame) => void, onClose: (reason: string) => void): Promise<WebSocket> {
    const url = `${this.baseUrl.replace(/^http/, 'ws')}/ws?clientId=${encodeURIComponent(clientId)}`;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { handshakeTimeout: this.#options.connectTimeoutMs });
      let ready = false;
      ws.on('message', (data, isBinary) => {
        const frame = parseFrame(data as Buffer, isBinary);
        if (!frame) return;
        if (!ready && frame.kind === 'json' && frame.type === 'status') { ready = true; resolve(ws); }
        onFrame(frame);
      });
      ws.on('error', (err) => { if (!ready) reject(unreachable(err, this.baseUrl)); });
      ws.on('close', (code) => {
        if (!ready) reject(new GatewayError('backend_unavailable', `ComfyUI closed the websocket before it was ready (${code})`));
        else onClose(`websocket closed (${code})`);
      });
    });
  }

  async #fetch(path: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<Response> {
    const { timeoutMs, ...rest } = init;
    const deadline = AbortSignal.timeout(timeoutMs ?? this.#options.requestTimeoutMs ?? 30_000);
    const signal = rest.signal ? AbortSignal.any([rest.signal, deadline]) : deadline;
    try {
      return await fetch(`${this.baseUrl}${path}`, { ...rest, signal });
    } catch (err) {
      if (rest.signal?.aborted) throw new GatewayError('cancelled', 'cancelled', { cause: err });
      throw unreachable(err, this.baseUrl);
    }
  }
}

function unreachable(err: unknown, baseUrl: string): GatewayError {
  const cause = (err as { cause?: { code?: string } }).cause;
  const code = cause?.code ?? (err as { code?: string }).code;
  const why = code === 'ECONNREFUSED' ? 'connection refused' : (err as Error).name === 'TimeoutError' ? 'timed out' : code ?? (err as Error).message;
  return new GatewayError('backend_unavailable', `ComfyUI at ${baseUrl} is unreachable (${why})`, { cause: err });
}

/** One websocket message: ComfyUI's JSON `{type, data}`, or a binary preview (event type, image type, bytes). */
export type ComfyFrame =
  | { kind: 'json'; type: string; data: Record<string, unknown> }
  | { kind: 'preview'; format: 'jpeg' | 'png'; image: Buffer };

/** Binary frames: a 4-byte big-endian event type (1: PREVIEW_IMAGE), then a 4-byte image type (1: JPEG, 2: PNG), then the image. */
export function parseFrame(data: Buffer, isBinary: boolean): ComfyFrame | undefined {
  if (isBinary) {
    if (data.length < 8 || data.readUInt32BE(0) !== 1) return undefined;
    const type = data.readUInt32BE(4);
    if (type !== 1 && type !== 2) return undefined;
    return { kind: 'preview', format: type === 1 ? 'jpeg' : 'png', image: data.subarray(8) };
  }
  try {
    const message = JSON.parse(data.toString('utf8')) as { type?: unknown; data?: unknown };
    if (typeof message.type !== 'string') return undefined;
    return { kind: 'json', type: message.type, data: (message.data && typeof message.data === 'object' ? message.data : {}) as Record<string, unknown> };
  } catch {
    return undefined;
  }
}
