import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify';
import { Subjects, parseJson, type KeyRecord } from '@homelab/bus';
import {
  OLLAMA_JSON_CONTENT_TYPE, OLLAMA_ROOT_TEXT, ollamaChat, ollamaEmbed, ollamaEmbeddings, ollamaGenerate, ollamaManagementForbidden, ollamaMissingBody,
  ollamaPs, ollamaShow, ollamaTags, ollamaVersion, type CatalogEntry, type DialectName,
} from '@homelab/dialects';
import { forwardTo, type RouteDeps } from './forward.ts';
import { modelVisibleToKey } from './model-scope.ts';

/**
 * Ollama's API, so Open WebUI's Ollama connection, the `ollama` npm client and every tool written
 * for Ollama use every model of the lab (docs/dialects.md, "Ollama API"). Generation and embeddings
 * go on the bus as the client's bytes (`inference.ollama.*`), like every dialect; the model views
 * (`/api/tags`, `/api/show`, `/api/ps`) are the router's catalog in Ollama's shape, seen through the
 * key; the probes are answered here; model management is refused: models live on the Ollama node.
 */
export const ollamaRoutes: FastifyPluginAsync<RouteDeps> = async (app, deps) => {
  const as = (dialect: DialectName) => ({ config: { dialect } });
  const chat = as('ollama.chat');

  // Probes (GET also answers HEAD): clients look for `Ollama is running` at `/`, then ask the version.
  app.get('/', chat, async (request, reply) => {
    reply.header('x-request-id', request.id).type('text/plain; charset=utf-8').send(OLLAMA_ROOT_TEXT);
  });
  app.get('/api/version', chat, async (request, reply) => {
    reply.header('x-request-id', request.id).type(OLLAMA_JSON_CONTENT_TYPE).send(JSON.stringify(ollamaVersion()));
  });

  // The lab's models in Ollama's shape.
  app.get('/api/tags', chat, catalogView(deps, (catalog) => ollamaTags(catalog)));
  app.get('/api/ps', chat, catalogView(deps, (catalog) => ollamaPs(catalog)));
  app.post('/api/show', chat, catalogView(deps, (catalog, request) => ollamaShow(catalog, showRequest(request))));

  // Generation and embeddings: the client's bytes on the bus, the answer's bytes back.
  app.post('/api/chat', chat, forwardTo(Subjects.ollamaChat.subject, ollamaChat, deps));
  app.post('/api/generate', as('ollama.generate'), forwardTo(Subjects.ollamaGenerate.subject, ollamaGenerate, deps));
  app.post('/api/embed', as('ollama.embed'), forwardTo(Subjects.ollamaEmbed.subject, ollamaEmbed, deps));
  app.post('/api/embeddings', as('ollama.embeddings'), forwardTo(Subjects.ollamaEmbeddings.subject, ollamaEmbeddings, deps));

  // Model management is the Ollama node's: 403 saying so, in Ollama's shape.
  for (const path of ['/api/pull', '/api/push', '/api/create', '/api/copy']) app.post(path, chat, managementForbidden);
  app.delete('/api/delete', chat, managementForbidden);
  app.head('/api/blobs/*', chat, managementForbidden);
  app.post('/api/blobs/*', chat, managementForbidden);
};

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A route answered from the router's catalog (`inference.models`): the models the request's key may
 * use, in Ollama's shape. A view that throws (Ollama's `model 'x' not found`) answers that error.
 */
function catalogView(deps: RouteDeps, view: (catalog: CatalogEntry[], request: FastifyRequest) => unknown): RouteHandlerMethod {
  return forwardTo(Subjects.models.subject, ollamaChat, deps, {
    body: () => EMPTY,
    rewrite: (request) => (data) => encoder.encode(JSON.stringify(view(chatModelsFor(request.apiKey, data), request))),
  });
}

/** The catalog's chat and embedding models a key may use (image models are no Ollama client's). */
function chatModelsFor(key: KeyRecord | undefined, data: Uint8Array): CatalogEntry[] {
  const list = JSON.parse(decoder.decode(data)) as { data?: (CatalogEntry & { type?: string })[] };
  return (list.data ?? []).filter((entry) => entry.type !== 'image' && modelVisibleToKey(key, entry));
}

/** `/api/show`'s body: `{model}` (or the older `{name}`); Ollama's errors for none or bad JSON. */
function showRequest(request: FastifyRequest): { model?: unknown; name?: unknown } {
  const bytes = request.body instanceof Buffer ? request.body : EMPTY;
  if (bytes.length === 0) throw ollamaMissingBody();
  const body = parseJson(bytes);
  return body !== null && typeof body === 'object' && !Array.isArray(body) ? body : {};
}

async function managementForbidden(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const { status, body } = ollamaManagementForbidden(request.url.split('?')[0]!);
  reply.code(status).header('x-request-id', request.id).type(OLLAMA_JSON_CONTENT_TYPE).send(body);
}
