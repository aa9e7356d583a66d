import { GatewayError, signFileUrl, type ImageJobResult, type ImageSubmitReply } from '@homelab/bus';

/*
 * OpenAI's answer to POST /v1/images/generations and /edits, from a job's result: each image as
 * b64_json (read from the object store unless the result carried it) or as a signed URL on the
 * gateway (GET /v1/images/files/{id}).
 */

export type ResultImage = ImageJobResult['data'][number];

/** An image of the answer with its bytes: the streamed answer sends one `completed` event each. */
export interface AnsweredImage {
  b64: string;
  ref: ResultImage;
}

/** What the answer reads of the object store (ImageFiles). */
export interface ImageFileReader {
  get(id: string): Promise<{ data: Uint8Array } | undefined>;
  info(id: string): Promise<{ metadata?: Record<string, string> | undefined } | undefined>;
}

export interface OpenAIImage {
  b64_json?: string;
  url?: string;
  revised_prompt?: string;
}

export interface OpenAIImageUsage {
  input_tokens: number;
  input_tokens_details: { image_tokens: number; text_tokens: number };
  output_tokens: number;
  total_tokens: number;
}

export interface OpenAIImagesResponse {
  created: number;
  data: OpenAIImage[];
  output_format: ImageSubmitReply['outputFormat'];
  size?: string;
  usage?: OpenAIImageUsage;
}

export interface AnswerOptions {
  /** The origin file URLs start with: `images.files.baseUrl`, or the one the client reached. */
  baseUrl: string;
  /** How long a signed URL stays good (`images.files.urlTtlSeconds`). */
  urlTtlSeconds: number;
  /** The answer is a stream of events, which always carry the images themselves. */
  stream: boolean;
  /** Epoch milliseconds; the clock otherwise. */
  now?: number;
}

export interface ImagesAnswer {
  body: OpenAIImagesResponse;
  images: AnsweredImage[];
}

export async function buildImagesAnswer(
  store: ImageFileReader, job: ImageSubmitReply, result: ImageJobResult, options: AnswerOptions,
): Promise<ImagesAnswer> {
  const wantB64 = options.stream || job.responseFormat === 'b64_json';
  const expires = Math.floor((options.now ?? Date.now()) / 1000) + options.urlTtlSeconds;
  const images: AnsweredImage[] = [];
  const data: OpenAIImage[] = [];
  for (const ref of result.data) {
    const entry: OpenAIImage = {};
    if (wantB64) {
      const b64 = await imageBase64(store, job, ref);
      entry.b64_json = b64;
      images.push({ b64, ref });
    } else {
      entry.url = await signedImageUrl(store, job, ref, options.baseUrl, expires);
    }
    if (ref.revised_prompt) entry.revised_prompt = ref.revised_prompt;
    data.push(entry);
  }
  const size = answerSize(job, result.data[0]);
  return {
    images,
    body: {
      created: result.created, data, output_format: job.outputFormat,
      ...(size && { size }),
      ...(result.usage && { usage: openAIImageUsage(result.usage) }),
    },
  };
}

/** OpenAI's image usage; the lab does not count image input tokens apart from text ones. */
export function openAIImageUsage(usage: ImageJobResult['usage']): OpenAIImageUsage {
  const input = usage?.input_tokens ?? 0;
  const output = usage?.output_tokens ?? 0;
  return { input_tokens: input, input_tokens_details: { image_tokens: 0, text_tokens: input }, output_tokens: output, total_tokens: input + output };
}

async function imageBase64(store: ImageFileReader, job: ImageSubmitReply, ref: ResultImage): Promise<string> {
  if (ref.b64_json !== undefined) return ref.b64_json;
  const file = await store.get(ref.file_id);
  if (!file) throw missingImage(job, ref);
  return Buffer.from(file.data.buffer, file.data.byteOffset, file.data.byteLength).toString('base64');
}

/** Each file signs with a token of its own, kept in its metadata: no secret is shared between ingress replicas. */
async function signedImageUrl(store: ImageFileReader, job: ImageSubmitReply, ref: ResultImage, baseUrl: string, expires: number): Promise<string> {
  const token = (await store.info(ref.file_id))?.metadata?.['token'];
  if (!token) throw missingImage(job, ref);
  return `${baseUrl}/v1/images/files/${ref.file_id}?expires=${expires}&sig=${signFileUrl(ref.file_id, token, expires)}`;
}

/** The size the images came out at; the one asked for when the result does not say. */
function answerSize(job: ImageSubmitReply, first: ResultImage | undefined): string | undefined {
  if (first?.width && first.height) return `${first.width}x${first.height}`;
  return job.size || undefined;
}

function missingImage(job: ImageSubmitReply, ref: ResultImage): GatewayError {
  return new GatewayError('internal_error', `the image ${ref.file_id} of job ${job.id} is missing from the object store`);
}
