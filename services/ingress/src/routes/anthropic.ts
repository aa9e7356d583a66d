import type { FastifyPluginAsync } from 'fastify';
import { Subjects } from '@homelab/bus';
import { anthropicCountTokens, anthropicMessages } from '@homelab/dialects';
import { forwardTo, type RouteDeps } from './forward.ts';

/**
 * Anthropic's Messages API, as Claude Code and the Anthropic SDK call it (Claude Code adds
 * `?beta=true`, which the path match ignores). The body goes on the bus unparsed, and the
 * `anthropic-version` / `anthropic-beta` headers with it (relay.ts), to reach Anthropic as the client
 * sent them. `GET /v1/models` in Anthropic's shape is in models.ts; auth by `x-api-key` or Bearer in edge.ts.
 */
export const anthropicRoutes: FastifyPluginAsync<RouteDeps> = async (app, deps) => {
  app.post('/v1/messages', { config: { dialect: 'anthropic.messages' } }, forwardTo(Subjects.messages.subject, anthropicMessages, deps));
  app.post('/v1/messages/count_tokens', { config: { dialect: 'anthropic.count_tokens' } }, forwardTo(Subjects.messagesCountTokens.subject, anthropicCountTokens, deps));
};
