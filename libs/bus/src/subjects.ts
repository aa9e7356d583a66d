import type { Static, TSchema } from '@sinclair/typebox';
import {
  ChatRequestSchema, EmbeddingsRequestSchema, InferenceCompletedSchema, ModelsRequestSchema, WorkerModelsSchema,
} from './schemas.ts';

/**
 * Every subject the system uses, in one place. Three kinds:
 * - `request`: public request/reply endpoints (scripts and the ingress use them), registered as NATS micro services;
 * - `internal`: between the gateway's own services only (nats.conf keeps scripts out);
 * - `event`: facts kept in a JetStream stream, so a consumer that restarts misses nothing.
 * The schema is what the receiver validates.
 */
export const Subjects = {
  chatCompletions: { subject: 'inference.chat.completions', kind: 'request', schema: ChatRequestSchema },
  embeddings: { subject: 'inference.embeddings', kind: 'request', schema: EmbeddingsRequestSchema },
  models: { subject: 'inference.models', kind: 'request', schema: ModelsRequestSchema },
  /** Header-only message with `x-request-id`: the requester went away; abort that request's backend call. */
  cancel: { subject: 'inference.cancel', kind: 'internal', schema: null },
  inferenceCompleted: { subject: 'inference.completed', kind: 'event', stream: 'INFERENCE', schema: InferenceCompletedSchema },
} as const satisfies Record<string, SubjectSpec>;

export interface SubjectSpec {
  subject: string;
  kind: 'request' | 'internal' | 'event';
  schema: TSchema | null;
  stream?: string;
}

export type SubjectKey = keyof typeof Subjects;
export type EventKey = { [K in SubjectKey]: (typeof Subjects)[K]['kind'] extends 'event' ? K : never }[SubjectKey];
export type EventPayload<K extends EventKey> = Static<(typeof Subjects)[K]['schema']>;

/** Subjects of one worker kind: `worker.<provider>.chat|embeddings|models` (internal, queue group per provider). */
export type WorkerOperation = 'chat' | 'embeddings' | 'models';
export const workerSubject = (provider: string, operation: WorkerOperation): string => `worker.${provider}.${operation}`;
export const WorkerModelsReply = WorkerModelsSchema;

/** JetStream streams, derived from the event subjects above. */
export interface StreamSpec { name: string; subjects: string[]; description: string; maxAgeDays: number }
export const Streams: StreamSpec[] = [
  { name: 'INFERENCE', subjects: [Subjects.inferenceCompleted.subject], description: 'Finished inference requests', maxAgeDays: 14 },
];
