import { GatewayError, type ImageFileMeta, type ImageFileRef } from '@homelab/bus';

/*
 * POST /v1/images/edits as a multipart form (what OpenAI's SDKs send), turned into the JSON body
 * the job API takes: the images go to the object store first, and the job names them by file id.
 */

/** A part of the form, as @fastify/multipart yields it (only what is read of it). */
export type EditFormPart =
  | { type: 'file'; fieldname: string; toBuffer(): Promise<Buffer> }
  | { type: 'field'; fieldname: string; value: unknown };

/** Where the uploads go (ImageFiles). */
export interface ImageUploads {
  put(data: Uint8Array, meta: ImageFileMeta): Promise<ImageFileRef>;
}

/** An input's type by its first bytes: the part's declared type is only the client's say. */
const IMAGE_SIGNATURES: [string, (b: Buffer) => boolean][] = [
  ['image/png', (b) => b.length > 8 && b.readUInt32BE(0) === 0x89504e47],
  ['image/jpeg', (b) => b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff],
  ['image/webp', (b) => b.length > 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP'],
];

/** PNG, JPEG or WebP, by the bytes; undefined for anything else. */
export function sniffImageType(data: Buffer): string | undefined {
  return IMAGE_SIGNATURES.find(([, matches]) => matches(data))?.[0];
}

const NUMERIC_FIELDS = new Set(['n', 'seed', 'steps', 'strength', 'partial_images', 'output_compression']);

/** Form fields are text: the numeric and boolean ones become numbers and booleans, as in the JSON API. */
export function formFieldValue(name: string, value: string): unknown {
  if (NUMERIC_FIELDS.has(name)) {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) {
      throw new GatewayError('invalid_request', `'${name}' must be a number, not '${value.slice(0, 40)}'`, { param: name });
    }
    return n;
  }
  if (name === 'stream') return value === 'true' || value === '1';
  return value;
}

/**
 * Reads the form into the job API's JSON body, storing each image as it arrives (a form may hold
 * 16 images: they are not all kept in memory). The id of every stored file is pushed to `uploaded`
 * at once, so that the caller can remove them when the form, or its job, fails.
 */
export async function readEditForm(
  parts: AsyncIterable<EditFormPart>, uploads: ImageUploads, apiKeyName: string | undefined, uploaded: string[],
): Promise<Record<string, unknown>> {
  const fields: Record<string, string> = {};
  const images: { file_id: string }[] = [];
  let mask: { file_id: string } | undefined;
  for await (const part of parts) {
    if (part.type === 'field') {
      fields[part.fieldname] = String(part.value);
      continue;
    }
    const ref = await storeEditImage(part.fieldname, await part.toBuffer(), uploads, apiKeyName);
    uploaded.push(ref.id);
    if (part.fieldname === 'mask') mask = { file_id: ref.id };
    else images.push({ file_id: ref.id });
  }
  return editBody(fields, images, mask);
}

async function storeEditImage(name: string, data: Buffer, uploads: ImageUploads, apiKeyName: string | undefined): Promise<ImageFileRef> {
  if (name !== 'image' && name !== 'image[]' && name !== 'mask') {
    throw new GatewayError('invalid_request', `unexpected file field '${name.slice(0, 40)}' (image, image[] or mask)`, { param: name.slice(0, 40) });
  }
  const contentType = sniffImageType(data);
  if (!contentType) throw new GatewayError('invalid_request', `'${name}' must be a PNG, JPEG or WebP image`, { param: name === 'mask' ? 'mask' : 'image' });
  return uploads.put(data, { role: 'input', jobId: 'upload', contentType, ...(apiKeyName && { apiKey: apiKeyName }) });
}

function editBody(fields: Record<string, string>, images: { file_id: string }[], mask: { file_id: string } | undefined): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields)) body[name] = formFieldValue(name, value);
  if (images.length > 0) body['images'] = images;
  if (mask) body['mask'] = mask;
  if (!body['images']) throw new GatewayError('invalid_request', "an edit needs an 'image' file", { param: 'image' });
  return body;
}
