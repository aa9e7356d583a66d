import type { ImageInput, ImageJob } from '@homelab/bus';
import { ImageJobError } from './executor.ts';

/** What is read of the object store (ImageFiles). */
export interface InputFiles {
  get(id: string): Promise<{ data: Uint8Array; info: { metadata?: Record<string, string> | undefined } } | undefined>;
}

/** An input image: a file of the object store, or a `data:` URL. */
export async function readInput(files: InputFiles, input: ImageInput): Promise<{ data: Uint8Array; contentType: string }> {
  if ('image_url' in input) {
    const m = /^data:(image\/(?:png|jpeg|webp));base64,(.*)$/s.exec(input.image_url);
    if (!m) throw new ImageJobError('invalid_request', 'an input image_url must be a data: URL of a PNG, JPEG or WebP image', 'validation', { param: 'images' });
    return { data: Buffer.from(m[2]!, 'base64'), contentType: m[1]! };
  }
  const file = await files.get(input.file_id);
  if (!file) throw new ImageJobError('invalid_request', `the input image ${input.file_id} does not exist (expired?)`, 'validation', { param: 'images' });
  return { data: file.data, contentType: file.info.metadata?.['contentType'] ?? 'image/png' };
}

/** The object store files a job's inputs are: uploaded for this job only, so removed when it ends. */
export function inputFileIds(job: Pick<ImageJob, 'images' | 'mask'>): string[] {
  const inputs = [...(job.images ?? []), ...(job.mask ? [job.mask] : [])];
  return inputs.flatMap((input) => ('file_id' in input ? [input.file_id] : []));
}
