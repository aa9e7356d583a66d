import { jetstreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { Type, type Static } from '@sinclair/typebox';
import { createKvBucket, retryJetStreamApi } from './jetstream-api.ts';

/*
 * The KV bucket `responses`: the Responses API's stored responses (`store`, on by default as at
 * OpenAI), one record per response id, so `previous_response_id` and `GET /v1/responses/{id}` work
 * on any replica and after a restart. The workers write a record when an answer ends; the router
 * reads and deletes (`inference.responses.get|delete|input_items`). What a record holds is the
 * Responses dialect's business (`@homelab/dialects` store.ts): here it is bytes under an id.
 */

export const RESPONSES_BUCKET = 'responses';
/** The bucket's handle, as the router and the workers use it. */
export type ResponsesBucket = KV;

/** Two minutes, JetStream's default duplicate window, or the TTL when shorter (it may not exceed max age). */
const DUPLICATE_WINDOW_MS = 120_000;

/**
 * Opens the bucket, making it when missing (file storage, `replicas`, records kept `ttlMs`). A
 * bucket made with another TTL gets the configured one: every process reads the same config.
 */
export async function openResponsesBucket(nc: NatsConnection, options: { replicas: number; ttlMs: number }): Promise<ResponsesBucket> {
  const ttlMs = Math.max(1000, Math.round(options.ttlMs));
  const kv = await createKvBucket(nc, RESPONSES_BUCKET, {
    replicas: options.replicas, history: 1, ttl: ttlMs, description: 'Stored responses of the Responses API, by response id (inference.responses.ttlDays)',
  });
  const status = await kv.status();
  if (status.ttl !== ttlMs) {
    const jsm = await retryJetStreamApi(() => jetstreamManager(nc));
    const stream = `KV_${RESPONSES_BUCKET}`;
    const { config } = await retryJetStreamApi(() => jsm.streams.info(stream));
    await retryJetStreamApi(() => jsm.streams.update(stream, { ...config, max_age: ttlMs * 1e6, duplicate_window: Math.min(ttlMs, DUPLICATE_WINDOW_MS) * 1e6 }));
  }
  return kv;
}

/**
 * `inference.responses.get` / `.delete` / `.input_items`: a stored response by id, and (input
 * items) the page asked for, as the query parameters of `GET /v1/responses/{id}/input_items`.
 */
export const StoredResponseRequestSchema = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 256 }),
  limit: Type.Optional(Type.Union([Type.String(), Type.Integer()])),
  order: Type.Optional(Type.String()),
  after: Type.Optional(Type.String()),
  before: Type.Optional(Type.String()),
}, { additionalProperties: false });
export type StoredResponseRequest = Static<typeof StoredResponseRequestSchema>;
