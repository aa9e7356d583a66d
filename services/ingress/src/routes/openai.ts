import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Subjects, keyAllowsModel, type KeyRecord } from '@homelab/bus';
import { isCloudProvider } from '@homelab/config';
import { openAIChat, openAICompletions, openAIEmbeddings } from '@homelab/dialects';
import { forwardTo, type RouteDeps } from './forward.ts';

/** OpenAI's API: chat completions, legacy completions, embeddings, the model list. */
export const openAIRoutes: FastifyPluginAsync<RouteDeps> = async (app, deps) => {
  const chat = { config: { dialect: 'openai.chat' as const } };
  app.post('/v1/chat/completions', chat, forwardTo(Subjects.chatCompletions.subject, openAIChat, deps));
  app.post('/v1/completions', { config: { dialect: 'openai.completions' } }, forwardTo(Subjects.completions.subject, openAICompletions, deps));
  app.post('/v1/embeddings', { config: { dialect: 'openai.embeddings' } }, forwardTo(Subjects.embeddings.subject, openAIEmbeddings, deps));
  const models = forwardTo(Subjects.models.subject, openAIChat, deps, { body: modelQuery, rewrite: (request) => modelsForKey(request.apiKey) });
  app.get('/v1/models', chat, models);
  app.get('/v1/models/*', chat, models);
};

const encoder = new TextEncoder();

/** `GET /v1/models/{id}` asks for one model; `GET /v1/models` (and `/v1/models/`, as OpenAI tolerates it) for the list. */
function modelQuery(request: FastifyRequest): Uint8Array {
  // Fastify has decoded the path once already: decoding again turns %25 into a URIError.
  const id = (request.params as { '*'?: string })['*'];
  return id ? encoder.encode(JSON.stringify({ id })) : new Uint8Array(0);
}

/** The model list for a key: only what it may use (its models and backends). Undefined: the one model asked for is not allowed. */
function modelsForKey(key: KeyRecord | undefined): ((data: Uint8Array) => Uint8Array | undefined) | undefined {
  if (!key) return undefined;
  const allowed = (m: { id: string; owned_by: string }): boolean =>
    keyAllowsModel(key, m.id) && (!key.backends || (key.backends as string[]).includes(m.owned_by)) && (!key.localOnly || !isCloudProvider(m.owned_by));
  return (data) => {
    const body = JSON.parse(Buffer.from(data).toString('utf8')) as { object: string; data?: { id: string; owned_by: string }[]; id?: string; owned_by?: string };
    if (body.object === 'list' && body.data) return encoder.encode(JSON.stringify({ ...body, data: body.data.filter(allowed) }));
    return allowed(body as { id: string; owned_by: string }) ? encoder.encode(JSON.stringify(body)) : undefined;
  };
}
