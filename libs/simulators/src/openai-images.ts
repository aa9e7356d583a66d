import type { IncomingMessage, ServerResponse } from 'node:http';
import { multipartBoundary, parseMultipart } from './multipart.ts';
import { encodePng, pngSize, seededImage } from './png.ts';
import { sendJson, sleep, type SimContext } from './sim.ts';

/*
 * OpenAI's images API as the simulator serves it (flavor `openai`): POST /v1/images/generations
 * (JSON) and POST /v1/images/edits (multipart: image / image[], mask, fields), with OpenAI's answer
 * `{created, data: [{b64_json | url, revised_prompt?}], usage?, size, quality, background, output_format}`
 * and, with `stream: true`, the SSE events `image_generation.partial_image` / `.completed`
 * (`image_edit.*` for edits). gpt-image models always answer b64_json and report token usage;
 * dall-e models answer a URL unless asked for b64_json. Images are real PNGs of the asked size.
 */

export const SIM_IMAGE_MODELS = ['gpt-image-1', 'gpt-image-1-mini', 'dall-e-2', 'dall-e-3'];

type SendError = (res: ServerResponse, status: number, message: string, extra?: { code?: string | null; param?: string | null }) => void;

export async function openAIImages(req: IncomingMessage, res: ServerResponse, ctx: SimContext, path: string, sendError: SendError, origin: string): Promise<void> {
  const edit = path === '/v1/images/edits';
  const raw = await readBody(req);
  let body: Record<string, unknown>;
  const input: { images: Buffer[]; mask?: Buffer } = { images: [] };
  if (edit) {
    const boundary = multipartBoundary(req.headers['content-type']);
    if (!boundary) return sendError(res, 400, "Invalid Content-Type header (expected multipart/form-data)", { param: null });
    body = {};
    try {
      for (const part of parseMultipart(raw, boundary)) {
        if (part.filename !== undefined) {
          if (part.name === 'mask') input.mask = part.data;
          else if (part.name === 'image' || part.name === 'image[]') input.images.push(part.data);
        } else body[part.name] = part.data.toString('utf8');
      }
    } catch {
      return sendError(res, 400, 'Could not parse multipart form', { param: null });
    }
    for (const k of ['n', 'partial_images', 'output_compression']) if (body[k] !== undefined) body[k] = Number(body[k]);
    if (body['stream'] !== undefined) body['stream'] = body['stream'] === 'true';
  } else {
    try { body = JSON.parse(raw.toString('utf8') || '{}') as Record<string, unknown>; } catch { return sendError(res, 400, 'We could not parse the JSON body of your request.'); }
  }
  ctx.record.body = { ...body, ...(edit && { images: input.images.length, mask: input.mask !== undefined }) };
  const fault = ctx.drawStatusFault();
  if (fault) return sendError(res, fault.status, fault.status === 429 ? 'Rate limit reached for images per minute.' : 'The server had an error while processing your request.', { code: fault.status === 429 ? 'rate_limit_exceeded' : null });

  const model = typeof body['model'] === 'string' ? body['model'] : edit ? 'dall-e-2' : 'dall-e-2';
  if (!SIM_IMAGE_MODELS.includes(model)) return sendError(res, 400, `Invalid value: '${model}'. Supported values are: ${SIM_IMAGE_MODELS.map((m) => `'${m}'`).join(', ')}.`, { param: 'model', code: 'invalid_value' });
  if (typeof body['prompt'] !== 'string' || body['prompt'] === '') return sendError(res, 400, "Missing required parameter: 'prompt'.", { param: 'prompt', code: 'missing_required_parameter' });
  if (edit && input.images.length === 0) return sendError(res, 400, "Missing required parameter: 'image'.", { param: 'image', code: 'missing_required_parameter' });
  const gpt = model.startsWith('gpt-image');
  const n = typeof body['n'] === 'number' ? body['n'] : 1;
  if (!Number.isInteger(n) || n < 1 || n > 10 || (model === 'dall-e-3' && n !== 1)) return sendError(res, 400, `Invalid 'n': ${String(body['n'])}.`, { param: 'n', code: 'invalid_value' });
  const size = typeof body['size'] === 'string' && body['size'] !== 'auto' ? body['size'] : (edit && input.images[0] ? sizeOf(input.images[0]) : '1024x1024');
  const m = /^(\d+)x(\d+)$/.exec(size);
  if (!m) return sendError(res, 400, `Invalid value: '${size}'.`, { param: 'size', code: 'invalid_value' });
  if (body['response_format'] !== undefined && gpt) return sendError(res, 400, "Unknown parameter: 'response_format'.", { param: 'response_format', code: 'unknown_parameter' });
  const [width, height] = [Number(m[1]), Number(m[2])];
  const seed = [...String(body['prompt'])].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
  const created = Math.floor(Date.now() / 1000);
  const usage = gpt ? { input_tokens: 12, input_tokens_details: { image_tokens: edit ? 323 * input.images.length : 0, text_tokens: 12 }, output_tokens: 272 * n, total_tokens: 12 + 272 * n } : undefined;
  const shape = { size, quality: typeof body['quality'] === 'string' ? body['quality'] : gpt ? 'medium' : 'standard', background: 'opaque', output_format: typeof body['output_format'] === 'string' ? body['output_format'] : 'png' };
  await sleep(ctx.options.tokenIntervalMs * 4, ctx.abortSignal);
  if (ctx.abortSignal.aborted) return;

  if (body['stream'] === true) {
    const prefix = edit ? 'image_edit' : 'image_generation';
    const partials = typeof body['partial_images'] === 'number' ? body['partial_images'] : 0;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    for (let i = 0; i < partials; i++) {
      const partial = encodePng(seededImage(Math.max(8, width >> 3), Math.max(8, height >> 3), seed, (i + 1) / (partials + 1))).toString('base64');
      res.write(`event: ${prefix}.partial_image\ndata: ${JSON.stringify({ type: `${prefix}.partial_image`, b64_json: partial, created_at: created, partial_image_index: i, ...shape })}\n\n`);
      await sleep(ctx.options.tokenIntervalMs, ctx.abortSignal);
    }
    for (let i = 0; i < n; i++) {
      const b64 = encodePng(seededImage(width, height, seed + i)).toString('base64');
      res.write(`event: ${prefix}.completed\ndata: ${JSON.stringify({ type: `${prefix}.completed`, b64_json: b64, created_at: created, ...shape, usage: usage ?? { input_tokens: 0, input_tokens_details: { image_tokens: 0, text_tokens: 0 }, output_tokens: 0, total_tokens: 0 } })}\n\n`);
    }
    res.end();
    return;
  }
  const b64 = gpt || body['response_format'] === 'b64_json';
  const data = Array.from({ length: n }, (_, i) => {
    const png = encodePng(seededImage(width, height, seed + i));
    return {
      ...(b64 ? { b64_json: png.toString('base64') } : { url: `${origin}/sim-images/${seed + i}-${width}x${height}.png` }),
      ...(model === 'dall-e-3' && { revised_prompt: `A detailed rendering of: ${String(body['prompt'])}` }),
    };
  });
  sendJson(res, 200, { created, data, ...(gpt && { ...shape, usage }) });
}

/** `GET /sim-images/<seed>-<w>x<h>.png`: what a dall-e URL answer points at. */
export function simImageFile(path: string, res: ServerResponse): boolean {
  const m = /^\/sim-images\/(\d+)-(\d+)x(\d+)\.png$/.exec(path);
  if (!m) return false;
  const png = encodePng(seededImage(Number(m[2]), Number(m[3]), Number(m[1])));
  res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length }).end(png);
  return true;
}

function sizeOf(png: Buffer): string {
  const s = pngSize(png);
  return s ? `${s.width}x${s.height}` : '1024x1024';
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  return Buffer.concat(parts);
}
