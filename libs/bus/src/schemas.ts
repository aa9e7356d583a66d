import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ProviderSchema } from '@homelab/config';
import { GatewayError } from './errors.ts';
import { explainMismatch } from './explain.ts';

/*
 * Payload schemas of every subject. Requests follow OpenAI's published API closely enough to
 * reject what OpenAI would reject (wrong types, missing fields) while letting unknown fields
 * through to the backends that take them.
 */

const Open = { additionalProperties: true } as const;
const Closed = { additionalProperties: false } as const;

export const ModelsRequestSchema = Type.Union([Type.Object({ id: Type.Optional(Type.String({ minLength: 1 })) }, Closed), Type.Null()]);
export type ModelsRequestPayload = Static<typeof ModelsRequestSchema>;

export { ProviderSchema };

/** One entry of `GET /v1/models`: OpenAI's model object plus the gateway's facts. */
export const ModelEntrySchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('model'),
  created: Type.Integer(),
  owned_by: Type.String(),
}, Open);
export type ModelEntry = Static<typeof ModelEntrySchema>;

export const ModelListSchema = Type.Object({ object: Type.Literal('list'), data: Type.Array(ModelEntrySchema) }, Open);
export type ModelList = Static<typeof ModelListSchema>;

/** A worker's answer to the router's discovery question: what its backend serves now. */
export const WorkerModelsSchema = Type.Object({
  provider: ProviderSchema,
  models: Type.Array(Type.Object({ id: Type.String(), created: Type.Optional(Type.Integer()), loaded: Type.Optional(Type.Boolean()) }, Open)),
}, Closed);
export type WorkerModels = Static<typeof WorkerModelsSchema>;

/** `inference.completed`: one per finished request, successful or not. */
export const InferenceCompletedSchema = Type.Object({
  requestId: Type.String(),
  traceId: Type.Optional(Type.String()),
  /** GenAI's operation name: `chat` (chat, Responses, Messages, Ollama chat), `text_completion`, `embeddings`. */
  operation: Type.Union([Type.Literal('chat'), Type.Literal('text_completion'), Type.Literal('embeddings')]),
  /** The client's dialect (libs/dialects: `openai.chat`, `anthropic.messages`, `ollama.chat`, …). */
  dialect: Type.Optional(Type.String()),
  stream: Type.Boolean(),
  requestedModel: Type.String(),
  /** The backend's model id that served (or was last tried). */
  model: Type.Optional(Type.String()),
  /** The model name the backend reported in its answer. */
  responseModel: Type.Optional(Type.String()),
  backend: Type.Optional(ProviderSchema),
  /** `cancelled`: the client hung up (or cancelled) before the answer ended; not the gateway's or a backend's failure. */
  status: Type.Union([Type.Literal('ok'), Type.Literal('error'), Type.Literal('cancelled')]),
  /** The error code from the gateway's table, on failure. */
  errorType: Type.Optional(Type.String()),
  httpStatus: Type.Integer(),
  attempts: Type.Integer({ minimum: 0 }),
  routeReason: Type.String(),
  latencyMs: Type.Number(),
  ttftMs: Type.Optional(Type.Number()),
  backendMs: Type.Optional(Type.Number()),
  /** The gateway's own time: latency minus the time spent waiting on the backend. */
  overheadMs: Type.Optional(Type.Number()),
  loadMs: Type.Optional(Type.Number()),
  inputTokens: Type.Optional(Type.Integer()),
  outputTokens: Type.Optional(Type.Integer()),
  cachedTokens: Type.Optional(Type.Integer()),
  finishReason: Type.Optional(Type.String()),
  /** The answer was cut after content reached the client. */
  truncated: Type.Optional(Type.Boolean()),
  /** The name of the API key the request came with (never the key). */
  apiKey: Type.Optional(Type.String()),
  finishedAt: Type.String(),
}, Closed);
export type InferenceCompleted = Static<typeof InferenceCompletedSchema>;

/** `inference.circuit`: a router's circuit breaker for one backend changed state. */
export const CircuitChangedSchema = Type.Object({
  backend: ProviderSchema,
  state: Type.Union([Type.Literal('closed'), Type.Literal('open'), Type.Literal('half-open')]),
  previous: Type.Union([Type.Literal('closed'), Type.Literal('open'), Type.Literal('half-open')]),
  reason: Type.String(),
  /** The router instance (its `$SRV` id): each replica keeps its own breakers. */
  router: Type.String(),
  at: Type.String(),
}, Closed);
export type CircuitChanged = Static<typeof CircuitChangedSchema>;

/** A compiled validator: compiled once at load, so checking a message costs microseconds. */
export interface Validator<T> {
  check(value: unknown): value is T;
  /** Returns the value typed, or throws GatewayError `invalid_request` naming the first bad field. */
  parse(value: unknown): T;
}

export function validator<S extends TSchema>(schema: S): Validator<Static<S>> {
  const compiled: TypeCheck<S> = TypeCompiler.Compile(schema);
  return {
    check: (value): value is Static<S> => compiled.Check(value),
    parse(value) {
      if (compiled.Check(value)) return value;
      // The slow path, for a value already known bad: name the field, what was expected, what came.
      const why = explainMismatch(schema, value);
      throw new GatewayError('invalid_request', why?.message ?? 'invalid payload', { param: why?.path || null });
    },
  };
}

/** Parses JSON bytes from the wire; throws GatewayError `invalid_json` with a readable message. */
export function parseJson(data: Uint8Array): unknown {
  if (data.length === 0) throw new GatewayError('invalid_json', 'request body is empty; expected a JSON object');
  if (jsonDepthExceeds(data, MAX_JSON_DEPTH)) throw new GatewayError('invalid_request', `request body is nested deeper than ${MAX_JSON_DEPTH} levels`);
  try {
    return JSON.parse(decoder.decode(data));
  } catch (err) {
    throw new GatewayError('invalid_json', `request body is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** Nothing in OpenAI's API nests near this; serializers (JSON.stringify in the SDKs) recurse, and overflow near 10^4. */
export const MAX_JSON_DEPTH = 128;

/** Whether brackets outside strings nest deeper than `max`: one pass over the bytes, before JSON.parse builds anything. */
export function jsonDepthExceeds(data: Uint8Array, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < data.length; i++) {
    const c = data[i]!;
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) { if (++depth > max) return true; }
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();
export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}
