import type { Static, TSchema } from '@sinclair/typebox';
import { KeyCreateSchema, KeyRevokeSchema } from './keys.ts';
import { StoredResponseRequestSchema } from './responses-bucket.ts';
import {
  CircuitChangedSchema, InferenceCompletedSchema, ModelsRequestSchema, WorkerModelsSchema,
} from './schemas.ts';
import { HealthChangedSchema, HealthProbeResultSchema, HealthStatusRequestSchema } from './health-schemas.ts';
import {
  MediaDownloadEventSchema, MediaLibrarySnapshotSchema, MediaQueueSnapshotSchema, MediaServiceErrorSchema, MediaServiceRecoveredSchema,
  MediaSessionsSnapshotSchema, MediaStatusRequestSchema, MediaStorageAlertSchema, MediaStorageSnapshotSchema, MediaStreamEventSchema,
  MediaTransferSnapshotSchema, MediaWebhookEventSchema,
} from './media-schemas.ts';
import {
  ImageCancelledSchema, ImageCancelRequestSchema, ImageCompletedSchema, ImageFailedSchema, ImageJobSchema, ImageListRequestSchema, ImageProgressEventSchema,
  ImageRequestSchema, ImageStartedSchema, ImageSubmittedSchema,
} from './images-schemas.ts';

/**
 * Every subject the system uses, in one place. Three kinds:
 * - `request`: public request/reply endpoints (scripts and the ingress use them), registered as NATS micro services;
 * - `internal`: between the gateway's own services only (nats.conf keeps scripts out);
 * - `event`: facts kept in a JetStream stream, so a consumer that restarts misses nothing.
 * The schema is what the receiver validates.
 */
export const Subjects = {
  // Inference, one subject per API the house's clients speak: the body is the client's request in that
  // dialect (libs/dialects), validated by the router against the dialect's schema; the answer comes
  // back in the same dialect (docs/subjects.md).
  chatCompletions: { subject: 'inference.chat.completions', kind: 'request', schema: null, dialect: 'openai.chat' },
  completions: { subject: 'inference.completions', kind: 'request', schema: null, dialect: 'openai.completions' },
  responses: { subject: 'inference.responses', kind: 'request', schema: null, dialect: 'openai.responses' },
  /** Stored responses (KV `responses`): `GET /v1/responses/{id}`, `DELETE …`, `GET …/input_items`; answered in OpenAI's shapes. */
  responsesGet: { subject: 'inference.responses.get', kind: 'request', schema: StoredResponseRequestSchema },
  responsesDelete: { subject: 'inference.responses.delete', kind: 'request', schema: StoredResponseRequestSchema },
  responsesInputItems: { subject: 'inference.responses.input_items', kind: 'request', schema: StoredResponseRequestSchema },
  embeddings: { subject: 'inference.embeddings', kind: 'request', schema: null, dialect: 'openai.embeddings' },
  messages: { subject: 'inference.messages', kind: 'request', schema: null, dialect: 'anthropic.messages' },
  messagesCountTokens: { subject: 'inference.messages.count_tokens', kind: 'request', schema: null, dialect: 'anthropic.count_tokens' },
  ollamaChat: { subject: 'inference.ollama.chat', kind: 'request', schema: null, dialect: 'ollama.chat' },
  ollamaGenerate: { subject: 'inference.ollama.generate', kind: 'request', schema: null, dialect: 'ollama.generate' },
  ollamaEmbed: { subject: 'inference.ollama.embed', kind: 'request', schema: null, dialect: 'ollama.embed' },
  ollamaEmbeddings: { subject: 'inference.ollama.embeddings', kind: 'request', schema: null, dialect: 'ollama.embeddings' },
  models: { subject: 'inference.models', kind: 'request', schema: ModelsRequestSchema },
  /** API key management (the `admin` identity only: nats.conf). */
  keysCreate: { subject: 'keys.create', kind: 'request', schema: KeyCreateSchema },
  keysList: { subject: 'keys.list', kind: 'request', schema: null },
  keysRevoke: { subject: 'keys.revoke', kind: 'request', schema: KeyRevokeSchema },
  /** Header-only message with `x-request-id`: the requester went away; abort that request's backend call. */
  cancel: { subject: 'inference.cancel', kind: 'internal', schema: null },
  inferenceCompleted: { subject: 'inference.completed', kind: 'event', stream: 'INFERENCE', schema: InferenceCompletedSchema },
  /** A router's circuit breaker for a backend changed state. */
  circuitChanged: { subject: 'inference.circuit', kind: 'event', stream: 'INFERENCE', schema: CircuitChangedSchema },
  // --- health service (docs/health.md) ---
  /** A target changed state: `health.<node>.<service>` (`healthEventSubject()`); never `health.status`, which has two tokens. */
  healthChanged: { subject: 'health.*.*', kind: 'event', stream: 'HEALTH', schema: HealthChangedSchema },
  /** Every probe's result, for metrics: `health.probe.<node>.<service>` (`healthProbeSubject()`). */
  healthProbe: { subject: 'health.probe.*.*', kind: 'event', stream: 'HEALTH_PROBES', schema: HealthProbeResultSchema },
  /** The live snapshot (HealthSnapshot); the ingress serves it at `GET /status`. */
  healthStatus: { subject: 'health.status', kind: 'request', schema: HealthStatusRequestSchema },
  // --- end health service ---
  // --- media service (docs/media.md) ---
  /** The latest snapshot of everything the media service watches (MediaStatus); not in the MEDIA stream. */
  mediaStatus: { subject: 'media.status', kind: 'request', schema: MediaStatusRequestSchema },
  mediaQueue: { subject: 'media.queue', kind: 'event', stream: 'MEDIA', schema: MediaQueueSnapshotSchema },
  mediaTransfer: { subject: 'media.transfer', kind: 'event', stream: 'MEDIA', schema: MediaTransferSnapshotSchema },
  mediaLibrary: { subject: 'media.library', kind: 'event', stream: 'MEDIA', schema: MediaLibrarySnapshotSchema },
  mediaSessions: { subject: 'media.sessions', kind: 'event', stream: 'MEDIA', schema: MediaSessionsSnapshotSchema },
  mediaStorage: { subject: 'media.storage', kind: 'event', stream: 'MEDIA', schema: MediaStorageSnapshotSchema },
  mediaDownloadGrabbed: { subject: 'media.download.grabbed', kind: 'event', stream: 'MEDIA', schema: MediaDownloadEventSchema },
  mediaDownloadCompleted: { subject: 'media.download.completed', kind: 'event', stream: 'MEDIA', schema: MediaDownloadEventSchema },
  mediaDownloadImported: { subject: 'media.download.imported', kind: 'event', stream: 'MEDIA', schema: MediaDownloadEventSchema },
  mediaDownloadFailed: { subject: 'media.download.failed', kind: 'event', stream: 'MEDIA', schema: MediaDownloadEventSchema },
  mediaStreamStarted: { subject: 'media.stream.started', kind: 'event', stream: 'MEDIA', schema: MediaStreamEventSchema },
  mediaStreamStopped: { subject: 'media.stream.stopped', kind: 'event', stream: 'MEDIA', schema: MediaStreamEventSchema },
  mediaStorageLow: { subject: 'media.storage.low', kind: 'event', stream: 'MEDIA', schema: MediaStorageAlertSchema },
  mediaStorageRecovered: { subject: 'media.storage.recovered', kind: 'event', stream: 'MEDIA', schema: MediaStorageAlertSchema },
  mediaServiceError: { subject: 'media.service.error', kind: 'event', stream: 'MEDIA', schema: MediaServiceErrorSchema },
  mediaServiceRecovered: { subject: 'media.service.recovered', kind: 'event', stream: 'MEDIA', schema: MediaServiceRecoveredSchema },
  /** Every accepted webhook: `media.webhook.<kind>` (`mediaWebhookSubject()`). */
  mediaWebhook: { subject: 'media.webhook.*', kind: 'event', stream: 'MEDIA', schema: MediaWebhookEventSchema },
  // --- end media service ---
  // --- images (docs/images.md) ---
  /** Generates and waits: the reply is the result (or the error), sent by whoever ends the job. */
  imagesGenerate: { subject: 'images.generate', kind: 'request', schema: ImageRequestSchema },
  /** Accepts a job and answers at once with its id (ImageSubmitReply). */
  imagesSubmit: { subject: 'images.jobs.submit', kind: 'request', schema: ImageRequestSchema },
  /** `images.jobs.<id>.status`: the job's record (`imageJobStatusSubject()`). */
  imagesStatus: { subject: 'images.jobs.*.status', kind: 'request', schema: null },
  /** `images.jobs.<id>.cancel` (`imageJobCancelSubject()`); the workers listen too, to interrupt a running job. */
  imagesCancel: { subject: 'images.jobs.*.cancel', kind: 'request', schema: ImageCancelRequestSchema },
  imagesList: { subject: 'images.jobs.list', kind: 'request', schema: ImageListRequestSchema },
  /** The work queue: `worker.comfyui.images`, `worker.openai.images` (`imageJobSubject()`); the router publishes, one worker takes each. */
  imageJobs: { subject: 'worker.*.images', kind: 'internal', stream: 'IMAGE_JOBS', schema: ImageJobSchema },
  /** The router asks the ComfyUI worker what it serves (ImageWorkerModels). */
  imageWorkerModels: { subject: 'worker.comfyui.models', kind: 'internal', schema: null },
  /** `images.<kind>.<job id>` (`imageEventSubject()`): `images.*.<id>` follows one job. */
  imageSubmitted: { subject: 'images.submitted.*', kind: 'event', stream: 'IMAGES', schema: ImageSubmittedSchema },
  imageStarted: { subject: 'images.started.*', kind: 'event', stream: 'IMAGES', schema: ImageStartedSchema },
  imageProgress: { subject: 'images.progress.*', kind: 'event', stream: 'IMAGES', schema: ImageProgressEventSchema },
  imageCompleted: { subject: 'images.completed.*', kind: 'event', stream: 'IMAGES', schema: ImageCompletedSchema },
  imageFailed: { subject: 'images.failed.*', kind: 'event', stream: 'IMAGES', schema: ImageFailedSchema },
  imageCancelled: { subject: 'images.cancelled.*', kind: 'event', stream: 'IMAGES', schema: ImageCancelledSchema },
  // --- end images ---
} as const satisfies Record<string, SubjectSpec>;

export interface SubjectSpec {
  subject: string;
  kind: 'request' | 'internal' | 'event';
  schema: TSchema | null;
  stream?: string;
  /** Inference requests: the dialect of the body (libs/dialects), whose schema the router validates. */
  dialect?: string;
}

export type SubjectKey = keyof typeof Subjects;
export type EventKey = { [K in SubjectKey]: (typeof Subjects)[K]['kind'] extends 'event' ? K : never }[SubjectKey];
export type EventPayload<K extends EventKey> = Static<(typeof Subjects)[K]['schema']>;

/**
 * Subjects of one worker kind: `worker.<provider>.<operation>` (internal, queue group per provider).
 * `generate` takes a generation request in any dialect (chat, completions, Responses, Messages, Ollama's
 * chat and generate), `embed` an embeddings request, `count_tokens` a token count, `models` asks what
 * the backend serves now.
 */
export type WorkerOperation = 'generate' | 'embed' | 'count_tokens' | 'models';
export const workerSubject = (provider: string, operation: WorkerOperation): string => `worker.${provider}.${operation}`;
export const WorkerModelsReply = WorkerModelsSchema;

/** JetStream streams, derived from the event subjects above. */
export interface StreamSpec {
  name: string; subjects: string[]; description: string; maxAgeDays: number;
  /** `workqueue`: each message is removed once a consumer acks it (jobs); default: kept until max age (events). */
  retention?: 'workqueue';
}
export const Streams: StreamSpec[] = [
  { name: 'INFERENCE', subjects: [Subjects.inferenceCompleted.subject, Subjects.circuitChanged.subject], description: 'Finished inference requests and circuit breaker changes', maxAgeDays: 14 },
  { name: 'HEALTH', subjects: [Subjects.healthChanged.subject], description: 'Health state changes of the lab\'s targets', maxAgeDays: 30 },
  { name: 'HEALTH_PROBES', subjects: [Subjects.healthProbe.subject], description: 'Every health probe result, for metrics', maxAgeDays: 1 },
  // media: the event subjects listed one by one, so the request subject `media.status` stays out of the stream.
  {
    name: 'MEDIA', description: 'The media node: queue, transfer, library, sessions and storage snapshots; downloads, streams, alerts, webhooks', maxAgeDays: 7,
    subjects: ['media.queue', 'media.transfer', 'media.library', 'media.sessions', 'media.storage', 'media.download.*', 'media.stream.*', 'media.storage.*', 'media.service.*', 'media.webhook.*'],
  },
  // --- images ---
  {
    name: 'IMAGES', description: 'Image jobs: submitted, started, progress, completed, failed, cancelled', maxAgeDays: 7,
    subjects: ['images.submitted.*', 'images.started.*', 'images.progress.*', 'images.completed.*', 'images.failed.*', 'images.cancelled.*'],
  },
  { name: 'IMAGE_JOBS', description: 'Image jobs waiting for a worker (a work queue: a job leaves it once a worker is done with it)', maxAgeDays: 2, retention: 'workqueue', subjects: ['worker.comfyui.images', 'worker.openai.images'] },
  // --- end images ---
];

// --- media service ---
/** `media.webhook.<kind>`: where an accepted webhook of that kind is published. */
export const mediaWebhookSubject = (kind: 'sonarr' | 'radarr' | 'prowlarr' | 'jellyfin'): string => `media.webhook.${kind}`;
// --- end media service ---
