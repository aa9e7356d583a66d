import { Type, type Static, type TSchema } from '@sinclair/typebox';

/*
 * Image generation on the bus (docs/images.md): the request scripts and the ingress send, the job on
 * the work queue, the job's record in the KV bucket `image-jobs`, the events of its life, and the
 * messages a worker streams to whoever follows a job. Prompts travel in requests and jobs only:
 * never in a record, an event or a log line.
 */

const Open = { additionalProperties: true } as const;
const Closed = { additionalProperties: false } as const;
const Nullable = <T extends TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));

/** An input image: a file of the object store bucket `images` (what the ingress uploads), or a `data:` URL. */
export const ImageInputSchema = Type.Union([
  Type.Object({ file_id: Type.String({ minLength: 1, maxLength: 128 }) }, Closed),
  Type.Object({ image_url: Type.String({ pattern: '^data:image/(png|jpeg|webp);base64,' }) }, Closed),
]);
export type ImageInput = Static<typeof ImageInputSchema>;

export const ImageBackendSchema = Type.Union([Type.Literal('comfyui'), Type.Literal('openai')]);
export type ImageBackend = Static<typeof ImageBackendSchema>;

/**
 * `images.generate` and `images.jobs.submit`: OpenAI's image generation parameters, plus the
 * gateway's extensions (`seed`, `negative_prompt`, `steps`, `strength`) that go to the workflow, and
 * for edits the input `images` and `mask`. Unknown fields pass (OpenAI adds some often).
 */
export const ImageRequestSchema = Type.Object({
  model: Nullable(Type.String({ minLength: 1, maxLength: 256 })),
  prompt: Type.String({ minLength: 1, maxLength: 32_000 }),
  n: Nullable(Type.Integer({ minimum: 1, maximum: 16 })),
  /** `WIDTHxHEIGHT` or `auto`. */
  size: Nullable(Type.String({ pattern: '^(auto|[1-9][0-9]{0,4}x[1-9][0-9]{0,4})$' })),
  quality: Nullable(Type.String()),
  style: Nullable(Type.String()),
  background: Nullable(Type.String()),
  moderation: Nullable(Type.String()),
  response_format: Nullable(Type.Union([Type.Literal('url'), Type.Literal('b64_json')])),
  output_format: Nullable(Type.Union([Type.Literal('png'), Type.Literal('jpeg'), Type.Literal('webp')])),
  output_compression: Nullable(Type.Integer({ minimum: 0, maximum: 100 })),
  stream: Nullable(Type.Boolean()),
  partial_images: Nullable(Type.Integer({ minimum: 0, maximum: 3 })),
  user: Type.Optional(Type.String()),
  seed: Nullable(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
  negative_prompt: Nullable(Type.String({ maxLength: 32_000 })),
  steps: Nullable(Type.Integer({ minimum: 1, maximum: 100_000 })),
  /** Edits: how much the input changes (0..1; the workflow's denoise). */
  strength: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
  /** Edits: the input image(s); the first one is the workflow's input image. */
  images: Type.Optional(Type.Array(ImageInputSchema, { minItems: 1, maxItems: 16 })),
  mask: Type.Optional(ImageInputSchema),
}, Open);
export type ImageRequest = Static<typeof ImageRequestSchema>;

/** The job on the work queue (stream IMAGE_JOBS, `worker.<backend>.images`): everything a worker needs, and nothing it must look up. */
export const ImageJobSchema = Type.Object({
  id: Type.String({ pattern: '^[A-Za-z0-9_-]{8,64}$' }),
  kind: Type.Union([Type.Literal('generate'), Type.Literal('edit')]),
  backend: ImageBackendSchema,
  /** The backend's own model: the workflow's name for ComfyUI, OpenAI's model id. */
  model: Type.String({ minLength: 1 }),
  requestedModel: Type.String(),
  routeReason: Type.String(),
  prompt: Type.String({ minLength: 1 }),
  negativePrompt: Type.Optional(Type.String()),
  n: Type.Integer({ minimum: 1 }),
  /** Resolved for ComfyUI (request, model defaults); for OpenAI the `size` string as asked. */
  width: Type.Optional(Type.Integer({ minimum: 1 })),
  height: Type.Optional(Type.Integer({ minimum: 1 })),
  size: Type.Optional(Type.String()),
  seed: Type.Optional(Type.Integer({ minimum: 0 })),
  steps: Type.Optional(Type.Integer({ minimum: 1 })),
  strength: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  /** OpenAI's options, passed on to OpenAI as given. */
  options: Type.Optional(Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()]))),
  outputFormat: Type.Union([Type.Literal('png'), Type.Literal('jpeg'), Type.Literal('webp')]),
  responseFormat: Type.Union([Type.Literal('url'), Type.Literal('b64_json')]),
  /** Partial images to stream (from ComfyUI's previews), 0 without streaming. */
  partialImages: Type.Integer({ minimum: 0, maximum: 3 }),
  images: Type.Optional(Type.Array(ImageInputSchema)),
  mask: Type.Optional(ImageInputSchema),
  /** Where the final answer goes (the requester of `images.generate`). */
  replyTo: Type.Optional(Type.String()),
  /** Where progress, partial images, keepalives and the final answer go (the ingress following a request). */
  progressTo: Type.Optional(Type.String()),
  requestId: Type.String(),
  traceparent: Type.Optional(Type.String()),
  apiKey: Type.Optional(Type.String()),
  submittedAt: Type.String(),
}, Closed);
export type ImageJob = Static<typeof ImageJobSchema>;

/** One generated image, kept in the object store bucket `images` under its unguessable id. */
export const ImageFileRefSchema = Type.Object({
  id: Type.String(),
  contentType: Type.String(),
  bytes: Type.Integer({ minimum: 0 }),
  width: Type.Optional(Type.Integer()),
  height: Type.Optional(Type.Integer()),
  revisedPrompt: Type.Optional(Type.String()),
}, Closed);
export type ImageFileRef = Static<typeof ImageFileRefSchema>;

export const ImageJobStateSchema = Type.Union([Type.Literal('queued'), Type.Literal('running'), Type.Literal('completed'), Type.Literal('failed'), Type.Literal('cancelled')]);
export type ImageJobState = Static<typeof ImageJobStateSchema>;

export const ImageProgressSchema = Type.Object({
  step: Type.Integer({ minimum: 0 }),
  of: Type.Integer({ minimum: 0 }),
  percent: Type.Number({ minimum: 0, maximum: 100 }),
  /** The workflow node that runs (its id), and its class. */
  node: Type.Optional(Type.String()),
  nodeType: Type.Optional(Type.String()),
}, Closed);
export type ImageProgress = Static<typeof ImageProgressSchema>;

export const ImageJobErrorSchema = Type.Object({
  /** The gateway's error code (docs/subjects.md). */
  code: Type.String(),
  status: Type.Integer(),
  message: Type.String(),
  param: Type.Optional(Type.String()),
  /** Why, for metrics: `validation`, `node_error`, `out_of_memory`, `lost`, `comfyui_unavailable`, `timeout`, `attempts`, `upstream`, … */
  reason: Type.String(),
}, Closed);
export type ImageJobError = Static<typeof ImageJobErrorSchema>;

/** A job's record: the value under its id in the KV bucket `image-jobs`. What `images.jobs.<id>.status` answers. */
export const ImageJobRecordSchema = Type.Object({
  id: Type.String(),
  state: ImageJobStateSchema,
  kind: Type.Union([Type.Literal('generate'), Type.Literal('edit')]),
  backend: ImageBackendSchema,
  model: Type.String(),
  requestedModel: Type.String(),
  routeReason: Type.String(),
  n: Type.Integer(),
  width: Type.Optional(Type.Integer()),
  height: Type.Optional(Type.Integer()),
  requestId: Type.String(),
  apiKey: Type.Optional(Type.String()),
  submittedAt: Type.String(),
  startedAt: Type.Optional(Type.String()),
  finishedAt: Type.Optional(Type.String()),
  /** Deliveries of the job to a worker so far (more than one: a worker died with it). */
  attempts: Type.Integer({ minimum: 0 }),
  /** The prompt id at ComfyUI, written before it is submitted so a worker taking over finds it. */
  promptId: Type.Optional(Type.String()),
  /** Prompts submitted for this job at ComfyUI (a lost one is submitted again). */
  submissions: Type.Optional(Type.Integer({ minimum: 0 })),
  progress: Type.Optional(ImageProgressSchema),
  images: Type.Optional(Type.Array(ImageFileRefSchema)),
  error: Type.Optional(ImageJobErrorSchema),
  /** A cancel arrived while it ran: a worker taking it over must not start it again. */
  cancelRequested: Type.Optional(Type.Boolean()),
  /** Where the final answer goes, so whoever ends the job (a worker, a cancel) can send it. */
  replyTo: Type.Optional(Type.String()),
  progressTo: Type.Optional(Type.String()),
  responseFormat: Type.Union([Type.Literal('url'), Type.Literal('b64_json')]),
  outputFormat: Type.Union([Type.Literal('png'), Type.Literal('jpeg'), Type.Literal('webp')]),
  usage: Type.Optional(Type.Object({ inputTokens: Type.Integer(), outputTokens: Type.Integer() }, Closed)),
  costUsd: Type.Optional(Type.Number({ minimum: 0 })),
}, Closed);
export type ImageJobRecord = Static<typeof ImageJobRecordSchema>;

/** `images.jobs.submit` reply: the job, accepted and queued. */
export const ImageSubmitReplySchema = Type.Object({
  id: Type.String(),
  state: ImageJobStateSchema,
  model: Type.String(),
  backend: ImageBackendSchema,
  routeReason: Type.String(),
  /** Jobs ahead of it in its queue when it was accepted. */
  position: Type.Optional(Type.Integer({ minimum: 0 })),
  /** What the ingress needs to answer: whether to stream, how many partials, which formats. */
  stream: Type.Boolean(),
  partialImages: Type.Integer({ minimum: 0 }),
  responseFormat: Type.Union([Type.Literal('url'), Type.Literal('b64_json')]),
  outputFormat: Type.Union([Type.Literal('png'), Type.Literal('jpeg'), Type.Literal('webp')]),
  size: Type.Optional(Type.String()),
  created: Type.Integer(),
  /** When it was accepted (ISO 8601): a follower reads the IMAGES stream from (just before) then. */
  submittedAt: Type.String(),
}, Open);
export type ImageSubmitReply = Static<typeof ImageSubmitReplySchema>;

/** `images.jobs.<id>.cancel`: empty (cancel whatever state), or `{ ifQueued: true }` (only a job that has not started). */
export const ImageCancelRequestSchema = Type.Union([Type.Null(), Type.Object({ ifQueued: Type.Optional(Type.Boolean()) }, Closed)]);
export type ImageCancelRequest = Static<typeof ImageCancelRequestSchema>;

/** `images.jobs.list`: the newest jobs first. */
export const ImageListRequestSchema = Type.Union([Type.Null(), Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  state: Type.Optional(ImageJobStateSchema),
}, Closed)]);
export type ImageListRequest = Static<typeof ImageListRequestSchema>;

/** What the ComfyUI worker says of its backend when the router asks (`worker.comfyui.models`). */
export const ImageWorkerModelsSchema = Type.Object({
  backend: ImageBackendSchema,
  reachable: Type.Boolean(),
  models: Type.Array(Type.Object({ id: Type.String(), kind: Type.String(), description: Type.Optional(Type.String()) }, Closed)),
}, Closed);
export type ImageWorkerModels = Static<typeof ImageWorkerModelsSchema>;

// ------------------------------------------------------------------------------------------ events

const EventBase = {
  jobId: Type.String(),
  model: Type.String(),
  backend: ImageBackendSchema,
  at: Type.String(),
};

/** `images.submitted.<job id>`: accepted and queued. */
export const ImageSubmittedSchema = Type.Object({
  ...EventBase,
  requestedModel: Type.String(),
  kind: Type.Union([Type.Literal('generate'), Type.Literal('edit')]),
  n: Type.Integer(),
  requestId: Type.String(),
  routeReason: Type.String(),
  apiKey: Type.Optional(Type.String()),
}, Closed);
export type ImageSubmitted = Static<typeof ImageSubmittedSchema>;

/** `images.started.<job id>`: a worker took it (again, after a worker died: `attempt` > 1). */
export const ImageStartedSchema = Type.Object({
  ...EventBase,
  attempt: Type.Integer({ minimum: 1 }),
  /** From accepted to started. */
  queueWaitMs: Type.Number({ minimum: 0 }),
}, Closed);
export type ImageStarted = Static<typeof ImageStartedSchema>;

/** `images.progress.<job id>`: a step of the sampler (or a node started). */
export const ImageProgressEventSchema = Type.Object({ ...EventBase, ...ImageProgressSchema.properties }, Closed);
export type ImageProgressEvent = Static<typeof ImageProgressEventSchema>;

/** `images.completed.<job id>`. */
export const ImageCompletedSchema = Type.Object({
  ...EventBase,
  requestedModel: Type.String(),
  images: Type.Array(ImageFileRefSchema),
  attempts: Type.Integer({ minimum: 1 }),
  queueWaitMs: Type.Number({ minimum: 0 }),
  /** From started to done (the backend's time). */
  durationMs: Type.Number({ minimum: 0 }),
  /** Sampler steps run, and their rate. */
  steps: Type.Optional(Type.Integer({ minimum: 0 })),
  stepsPerSecond: Type.Optional(Type.Number({ minimum: 0 })),
  inputTokens: Type.Optional(Type.Integer({ minimum: 0 })),
  outputTokens: Type.Optional(Type.Integer({ minimum: 0 })),
  costUsd: Type.Optional(Type.Number({ minimum: 0 })),
  apiKey: Type.Optional(Type.String()),
}, Closed);
export type ImageCompleted = Static<typeof ImageCompletedSchema>;

/** `images.failed.<job id>`. */
export const ImageFailedSchema = Type.Object({
  ...EventBase,
  error: ImageJobErrorSchema,
  /** The node that failed, and its class (ComfyUI). */
  node: Type.Optional(Type.String()),
  nodeType: Type.Optional(Type.String()),
  attempts: Type.Integer({ minimum: 0 }),
  queueWaitMs: Type.Optional(Type.Number({ minimum: 0 })),
  durationMs: Type.Optional(Type.Number({ minimum: 0 })),
  apiKey: Type.Optional(Type.String()),
}, Closed);
export type ImageFailed = Static<typeof ImageFailedSchema>;

/** `images.cancelled.<job id>`: while it waited (`queued`) or ran (`running`). */
export const ImageCancelledSchema = Type.Object({
  ...EventBase,
  phase: Type.Union([Type.Literal('queued'), Type.Literal('running')]),
  apiKey: Type.Optional(Type.String()),
}, Closed);
export type ImageCancelled = Static<typeof ImageCancelledSchema>;

// ------------------------------------------------------------------------------------------ names

/** The KV bucket of job records, and the object store bucket of images (inputs and outputs). */
export const IMAGE_JOBS_BUCKET = 'image-jobs';
export const IMAGES_BUCKET = 'images';

/** `worker.comfyui.images`: the work-queue subject of a backend's jobs. */
export const imageJobSubject = (backend: ImageBackend): string => `worker.${backend}.images`;

/** `images.<kind>.<job id>`: where a job's events are published (`images.*.<id>` follows one job). */
export type ImageEventKind = 'submitted' | 'started' | 'progress' | 'completed' | 'failed' | 'cancelled';
export const imageEventSubject = (kind: ImageEventKind, jobId: string): string => `images.${kind}.${jobId}`;

/** `images.jobs.<id>.status` / `.cancel`. */
export const imageJobStatusSubject = (jobId: string): string => `images.jobs.${jobId}.status`;
export const imageJobCancelSubject = (jobId: string): string => `images.jobs.${jobId}.cancel`;

/**
 * The frames a worker sends to a job's `progressTo` subject, in the `Homelab-Stream` header:
 * `progress` (an ImageProgress), `partial` (a partial image), `keepalive` (empty), and the end:
 * a message without the header (the result) or with the service error headers (the failure).
 */
export const ImageStreamFrame = { progress: 'progress', partial: 'partial', keepalive: 'keepalive' } as const;

/** A partial image sent to `progressTo` while a streamed job runs. */
export interface ImagePartialFrame {
  index: number;
  b64_json: string;
  output_format: 'png' | 'jpeg' | 'webp';
  width?: number;
  height?: number;
}

/**
 * The final answer of a job, as `images.generate` returns it and the ingress reads it: the files,
 * and (when asked for and small enough for one message) the images themselves.
 */
export interface ImageJobResult {
  id: string;
  created: number;
  model: string;
  backend: ImageBackend;
  data: { file_id: string; content_type: string; bytes: number; width?: number; height?: number; b64_json?: string; revised_prompt?: string }[];
  usage?: { input_tokens: number; output_tokens: number; total_tokens: number };
}
