import { Type, type Static } from '@sinclair/typebox';
import { Images, ModelName, Nullable, Open, RunFields } from '../schema-parts.ts';

/** A tool call in a message: arguments are a JSON object, not a string as in OpenAI's API. */
const ToolCall = Type.Object({
  id: Type.Optional(Type.String()),
  function: Type.Object({
    index: Type.Optional(Type.Integer()),
    name: Type.String(),
    arguments: Type.Optional(Type.Object({}, Open)),
  }, Open),
}, Open);

/** Ollama lower-cases `role` and renders any role through the model's template; the four below are the ones it documents. */
export const OllamaChatMessageSchema = Type.Object({
  role: Type.String({ minLength: 1 }),
  content: Nullable(Type.String()),
  thinking: Nullable(Type.String()),
  images: Images,
  tool_calls: Nullable(Type.Array(ToolCall)),
  tool_name: Nullable(Type.String()),
  tool_call_id: Nullable(Type.String()),
}, Open);

const Tool = Type.Object({
  type: Type.String(),
  function: Type.Object({
    name: Type.String({ minLength: 1 }),
    description: Type.Optional(Type.String()),
    parameters: Type.Optional(Type.Object({}, Open)),
  }, Open),
}, Open);

/**
 * `POST /api/chat`. `stream` defaults to TRUE: a body without it streams NDJSON. No messages (or an
 * empty list) loads the model; with `keep_alive: 0` as well, it unloads it.
 */
export const OllamaChatRequestSchema = Type.Object({
  model: ModelName,
  messages: Nullable(Type.Array(OllamaChatMessageSchema)),
  tools: Nullable(Type.Array(Tool)),
  ...RunFields,
}, Open);
export type OllamaChatBody = Static<typeof OllamaChatRequestSchema>;
export type OllamaChatBodyMessage = Static<typeof OllamaChatMessageSchema>;
