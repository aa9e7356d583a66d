import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, Subjects, keyAllowsModel, type KeyRecord } from '@homelab/bus';
import { isCloudProvider } from '@homelab/config';
import { anthropicMessages, anthropicModel, anthropicModelList, openAIChat, type Dialect, type ModelFacts } from '@homelab/dialects';
import { isAnthropicClient } from '../edge.ts';
import { sendError } from '../relay.ts';
import { forwardTo, type RouteDeps } from './forward.ts';

/**
 * `GET /v1/models` and `GET /v1/models/{id}`, which OpenAI's and Anthropic's APIs both define at the
 * same path in different shapes: one handler, shaped by the client. A request with `anthropic-version`
 * (every Anthropic SDK request, Claude Code's model discovery) gets Anthropic's paged list
 * (`{data:[{type:"model", id, display_name, created_at}], has_more, first_id, last_id}`) and errors;
 * any other gets OpenAI's. Either way a key sees only the models it may use.
 */
export const modelRoutes: FastifyPluginAsync<RouteDeps> = async (app, deps) => {
  const relay = forwardTo(Subjects.models.subject, dialectOfClient, deps, { body: modelQuery, rewrite: modelAnswer, reshapeErrors: true });
  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (isAnthropicClient(request)) {
      const problem = pageQueryProblem(request.query as Record<string, unknown>);
      if (problem) return sendError(reply, anthropicMessages, problem, request.id);
    }
    return relay(request, reply);
  };
  // No `config.dialect`: the edge shapes refusals by the client too (edge.ts dialectForRequest).
  app.get('/v1/models', handler);
  app.get('/v1/models/*', handler);
};

const encoder = new TextEncoder();

/** The shape of the answer, and of errors: Anthropic's for Anthropic's clients. */
function dialectOfClient(request: FastifyRequest): Dialect {
  return isAnthropicClient(request) ? anthropicMessages : openAIChat;
}

/** `GET /v1/models/{id}` asks for one model; `GET /v1/models` (and `/v1/models/`, as OpenAI tolerates it) for the list. */
function modelQuery(request: FastifyRequest): Uint8Array {
  // Fastify has decoded the path once already: decoding again turns %25 into a URIError.
  const id = modelIdOf(request);
  return id ? encoder.encode(JSON.stringify({ id })) : new Uint8Array(0);
}

function modelIdOf(request: FastifyRequest): string | undefined {
  return (request.params as { '*'?: string })['*'] || undefined;
}

/** A model as the router lists it (OpenAI's shape, plus what the gateway adds). */
interface ListedModel {
  id: string;
  owned_by: string;
  created?: number;
  /** `image` for image generation models, which the Messages API cannot use. */
  type?: string;
}

interface RouterAnswer {
  object: string;
  data?: ListedModel[];
}

/**
 * The router's answer as the client gets it: only the models the key may use (its models and
 * backends, local only), in the client's shape. Undefined: the one model asked for is not allowed.
 */
function modelAnswer(request: FastifyRequest): ((data: Uint8Array) => Uint8Array | undefined) | undefined {
  const anthropic = isAnthropicClient(request);
  // OpenAI's shape without keys: the router's bytes as they are.
  if (!anthropic && !request.apiKey) return undefined;
  const allowed = allowedForKey(request.apiKey);
  const page = anthropic ? pageQuery(request.query as Record<string, unknown>) : {};
  return (data) => {
    const body = JSON.parse(Buffer.from(data).toString('utf8')) as RouterAnswer & ListedModel;
    if (body.object === 'list' && body.data) {
      const models = body.data.filter(allowed);
      if (!anthropic) return encoder.encode(JSON.stringify({ ...body, data: models }));
      // Image models cannot answer a Messages request: Anthropic's clients are not shown them.
      return encoder.encode(JSON.stringify(anthropicModelList(models.filter((m) => m.type !== 'image').map(factsOf), page)));
    }
    if (!allowed(body) || (anthropic && body.type === 'image')) return undefined;
    return encoder.encode(JSON.stringify(anthropic ? anthropicModel(factsOf(body)) : body));
  };
}

function factsOf(model: ListedModel): ModelFacts {
  return { id: model.id, ...(model.created !== undefined && { created: model.created }) };
}

/** Whether a key may use a listed model; every model without a key (keys off). */
function allowedForKey(key: KeyRecord | undefined): (m: ListedModel) => boolean {
  if (!key) return () => true;
  return (m) => keyAllowsModel(key, m.id) && (!key.backends || (key.backends as string[]).includes(m.owned_by)) && (!key.localOnly || !isCloudProvider(m.owned_by));
}

/** Anthropic's paging parameters: `limit` (1 to 1000, default 20), `after_id`, `before_id`. */
function pageQuery(query: Record<string, unknown>): { limit?: number; afterId?: string; beforeId?: string } {
  const limit = single(query['limit']);
  const afterId = single(query['after_id']);
  const beforeId = single(query['before_id']);
  return {
    ...(limit !== undefined && { limit: Number(limit) }),
    ...(afterId !== undefined && { afterId }),
    ...(beforeId !== undefined && { beforeId }),
  };
}

/** What Anthropic refuses with a 400: a `limit` that is not an integer from 1 to 1000. */
function pageQueryProblem(query: Record<string, unknown>): GatewayError | undefined {
  const limit = single(query['limit']);
  if (limit === undefined) return undefined;
  const n = Number(limit);
  if (limit.trim() === '' || !Number.isInteger(n)) return new GatewayError('invalid_request', 'limit: Input should be a valid integer', { param: 'limit' });
  if (n < 1 || n > 1000) return new GatewayError('invalid_request', `limit: Input should be ${n < 1 ? 'greater than or equal to 1' : 'less than or equal to 1000'}`, { param: 'limit' });
  return undefined;
}

function single(value: unknown): string | undefined {
  const first = Array.isArray(value) ? (value as unknown[])[0] : value;
  return typeof first === 'string' ? first : undefined;
}
