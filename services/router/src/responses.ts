import {
  Subjects, openResponsesBucket, respondJson, type KeyRecord, type KeyRegistry, type MicroService, type MsgHeaders, type NatsConnection, type ResponsesBucket,
  type StoredResponseRequest,
} from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import {
  decodeStoredResponse, deletedResponse, inputItemsPage, isResponseId, openAIError, parseInputItemsQuery, responseNotFound, storedResponseFor,
  type StoredResponse,
} from '@homelab/dialects';
import { keyOfRequest } from './keys.ts';

/*
 * The Responses API's stored responses, read and deleted: `GET /v1/responses/{id}`,
 * `DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`, as the subjects
 * `inference.responses.get|delete|input_items`. The workers write the records (KV `responses`) when
 * an answer ends; here a record is shown only to the key that made it, until it expires: to any
 * other key, and once past its time, it is OpenAI's 404, the same as an id that never existed.
 */

export interface StoredResponsesDeps {
  nc: NatsConnection;
  config: Pick<LabConfig, 'nats' | 'responses'>;
  service: MicroService;
  /** The lab's keys (keys on); undefined with `auth: none`, where every record belongs to no key (''). */
  keys: KeyRegistry | undefined;
  /** What a script without a key may do: it owns the records it made as `scripts`. */
  scriptsScope: KeyRecord;
}

/** Opens the bucket (made when missing) and serves the three endpoints. */
export async function serveStoredResponses(deps: StoredResponsesDeps): Promise<void> {
  const bucket = await openResponsesBucket(deps.nc, { replicas: deps.config.nats.replicas, ttlMs: deps.config.responses.ttlDays * 86_400_000 });
  const errorBody = (error: Parameters<typeof openAIError>[0]): string => openAIError(error).body;
  const owned = (headers: MsgHeaders | undefined, id: string): Promise<StoredResponse> => ownedRecord(bucket, id, ownerOf(headers, deps));

  deps.service.addEndpoint('responses-get', {
    subject: Subjects.responsesGet.subject, queue: 'router', schema: Subjects.responsesGet.schema, errorBody,
    handler: async ({ msg, payload }) => respondJson(msg, (await owned(msg.headers, payload.id)).response),
  });
  deps.service.addEndpoint('responses-input-items', {
    subject: Subjects.responsesInputItems.subject, queue: 'router', schema: Subjects.responsesInputItems.schema, errorBody,
    handler: async ({ msg, payload }) => {
      const query = parseInputItemsQuery(queryStrings(payload));
      respondJson(msg, inputItemsPage(await owned(msg.headers, payload.id), query));
    },
  });
  deps.service.addEndpoint('responses-delete', {
    subject: Subjects.responsesDelete.subject, queue: 'router', schema: Subjects.responsesDelete.schema, errorBody,
    handler: async ({ msg, payload }) => {
      await owned(msg.headers, payload.id);
      await bucket.delete(payload.id);
      respondJson(msg, deletedResponse(payload.id));
    },
  });
}

/** The name of the key that asks ('' with `auth: none`): records are read by the key that made them. */
function ownerOf(headers: MsgHeaders | undefined, deps: StoredResponsesDeps): string {
  return keyOfRequest(headers, deps.keys, deps.scriptsScope)?.name ?? '';
}

/** The record `id` as `owner` may see it; anything else is not found. */
export async function ownedRecord(bucket: ResponsesBucket, id: string, owner: string, now = Date.now()): Promise<StoredResponse> {
  if (!isResponseId(id)) throw responseNotFound(id);
  const entry = await bucket.get(id);
  const record = entry && entry.operation === 'PUT' ? decodeStoredResponse(entry.value) : undefined;
  return storedResponseFor(record, id, owner, now);
}

/** The page query as the HTTP query string has it (a script may send `limit` as a number). */
function queryStrings(payload: StoredResponseRequest): Record<string, string | undefined> {
  return { limit: payload.limit === undefined ? undefined : String(payload.limit), order: payload.order, after: payload.after, before: payload.before };
}
