import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Subjects } from '@homelab/bus';
import { openAIResponses } from '@homelab/dialects';
import { forwardTo, type RouteDeps } from './forward.ts';

/**
 * OpenAI's Responses API: `POST /v1/responses` (the dialect `openai.responses`, routed like chat),
 * and the stored responses (docs/dialects.md): `GET` and `DELETE /v1/responses/{id}`,
 * `GET /v1/responses/{id}/input_items`, answered by the router from the KV bucket `responses`.
 */
export const responsesRoutes: FastifyPluginAsync<RouteDeps> = async (app, deps) => {
  const responses = { config: { dialect: 'openai.responses' as const } };
  app.post('/v1/responses', responses, forwardTo(Subjects.responses.subject, openAIResponses, deps));
  app.get('/v1/responses/:id', responses, forwardTo(Subjects.responsesGet.subject, openAIResponses, deps, { body: storedResponseQuery }));
  app.delete('/v1/responses/:id', responses, forwardTo(Subjects.responsesDelete.subject, openAIResponses, deps, { body: storedResponseQuery }));
  app.get('/v1/responses/:id/input_items', responses, forwardTo(Subjects.responsesInputItems.subject, openAIResponses, deps, { body: storedResponseQuery }));
};

const encoder = new TextEncoder();

/** The stored response's id and the page asked for, as `inference.responses.*` take them. */
function storedResponseQuery(request: FastifyRequest): Uint8Array {
  const { id } = request.params as { id: string };
  const query = request.query as Record<string, unknown>;
  const page: Record<string, string> = {};
  for (const name of ['limit', 'order', 'after', 'before']) {
    const value = query[name];
    if (typeof value === 'string') page[name] = value;
  }
  return encoder.encode(JSON.stringify({ id, ...page }));
}
