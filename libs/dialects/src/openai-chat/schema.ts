import { Type, type Static, type TSchema } from '@sinclair/typebox';

/*
 * OpenAI's chat completion request, close enough to OpenAI's published API to reject what OpenAI
 * would reject (wrong types, missing fields) while letting unknown fields through to the backends
 * that take them.
 */

const Open = { additionalProperties: true } as const;

const TextPart = Type.Object({ type: Type.Literal('text'), text: Type.String() }, Open);
const ImagePart = Type.Object({
  type: Type.Literal('image_url'),
  image_url: Type.Object({ url: Type.String({ minLength: 1 }), detail: Type.Optional(Type.String()) }, Open),
}, Open);
const InputAudioPart = Type.Object({ type: Type.Literal('input_audio'), input_audio: Type.Object({}, Open) }, Open);
const FilePart = Type.Object({ type: Type.Literal('file'), file: Type.Object({}, Open) }, Open);
const ContentPart = Type.Union([TextPart, ImagePart, InputAudioPart, FilePart]);
const Content = Type.Union([Type.String(), Type.Array(ContentPart)]);

const ToolCall = Type.Object({
  id: Type.String({ minLength: 1 }),
  type: Type.Literal('function'),
  function: Type.Object({ name: Type.String({ minLength: 1 }), arguments: Type.String() }, Open),
}, Open);

const SystemMessage = Type.Object({ role: Type.Union([Type.Literal('system'), Type.Literal('developer')]), content: Content, name: Type.Optional(Type.String()) }, Open);
const UserMessage = Type.Object({ role: Type.Literal('user'), content: Content, name: Type.Optional(Type.String()) }, Open);
const AssistantMessage = Type.Object({
  role: Type.Literal('assistant'),
  content: Type.Optional(Type.Union([Content, Type.Null()])),
  name: Type.Optional(Type.String()),
  tool_calls: Type.Optional(Type.Array(ToolCall)),
  refusal: Type.Optional(Type.Union([Type.String(), Type.Null()])),
}, Open);
const ToolMessage = Type.Object({ role: Type.Literal('tool'), content: Content, tool_call_id: Type.String({ minLength: 1 }) }, Open);

export const ChatMessageSchema = Type.Union([SystemMessage, UserMessage, AssistantMessage, ToolMessage]);

const Tool = Type.Object({
  type: Type.Literal('function'),
  function: Type.Object({
    name: Type.String({ minLength: 1, maxLength: 64 }),
    description: Type.Optional(Type.String()),
    parameters: Type.Optional(Type.Object({}, Open)),
    strict: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
  }, Open),
}, Open);

const ToolChoice = Type.Union([
  Type.Literal('none'), Type.Literal('auto'), Type.Literal('required'),
  Type.Object({ type: Type.Literal('function'), function: Type.Object({ name: Type.String({ minLength: 1 }) }, Open) }, Open),
]);

const ResponseFormat = Type.Union([
  Type.Object({ type: Type.Literal('text') }, Open),
  Type.Object({ type: Type.Literal('json_object') }, Open),
  Type.Object({
    type: Type.Literal('json_schema'),
    json_schema: Type.Object({ name: Type.String({ minLength: 1 }), schema: Type.Optional(Type.Object({}, Open)), strict: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])), description: Type.Optional(Type.String()) }, Open),
  }, Open),
]);

const Nullable = <T extends TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));

export const ChatRequestSchema = Type.Object({
  model: Type.String({ minLength: 1, maxLength: 256 }),
  messages: Type.Array(ChatMessageSchema, { minItems: 1 }),
  stream: Nullable(Type.Boolean()),
  stream_options: Nullable(Type.Object({ include_usage: Type.Optional(Type.Boolean()) }, Open)),
  tools: Type.Optional(Type.Array(Tool)),
  tool_choice: Type.Optional(ToolChoice),
  parallel_tool_calls: Type.Optional(Type.Boolean()),
  response_format: Type.Optional(ResponseFormat),
  temperature: Nullable(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
  max_tokens: Nullable(Type.Integer({ minimum: 1 })),
  max_completion_tokens: Nullable(Type.Integer({ minimum: 1 })),
  stop: Nullable(Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 4 })])),
  seed: Nullable(Type.Integer()),
  user: Type.Optional(Type.String()),
  /** Several choices: passed to the backends that have them (vLLM, OpenAI); the others answer a clear 400. */
  n: Nullable(Type.Integer({ minimum: 1, maximum: 128 })),
  frequency_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
  presence_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
  reasoning_effort: Nullable(Type.String()),
}, Open);
export type ChatRequestPayload = Static<typeof ChatRequestSchema>;

