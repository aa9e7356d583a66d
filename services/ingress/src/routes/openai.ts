import type { FastifyPluginAsync } from 'fastify';
import { Subjects } from '@homelab/bus';
import { openAIChat, openAICompletions, openAIEmbeddings } from '@homelab/dialects';
import { forwardTo, type RouteDeps } from './forward.ts';

/** OpenAI's API: chat completions, legacy completions, embeddings. (The model list, which Anthropic's API shares, is in models.ts.) */
export const openAIRoutes: FastifyPluginAsync<RouteDeps> = async (app, deps) => {
  const chat = { config: { dialect: 'openai.chat' as const } };
  app.post('/v1/chat/completions', chat, forwardTo(Subjects.chatCompletions.subject, openAIChat, deps));
  app.post('/v1/completions', { config: { dialect: 'openai.completions' } }, forwardTo(Subjects.completions.subject, openAICompletions, deps));
  app.post('/v1/embeddings', { config: { dialect: 'openai.embeddings' } }, forwardTo(Subjects.embeddings.subject, openAIEmbeddings, deps));
};
