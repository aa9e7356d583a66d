import { Type, type Static, type TSchema, type TString } from '@sinclair/typebox';

/*
 * Anthropic's Messages request (`POST /v1/messages`) and token count request
 * (`POST /v1/messages/count_tokens`), as the router validates them: close enough to Anthropic's
 * published API to reject what Anthropic rejects (missing fields, wrong types), while unknown fields
 * pass, so a request that goes to Anthropic keeps whatever Anthropic adds next.
 *
 * Content blocks and tools are unions on their `type`. The known types are checked field by field;
 * a block or tool of a type this schema does not know passes too (Anthropic judges it when the request
 * goes there; the translation for other backends refuses it with a clear error naming the type).
 */

const Open = { additionalProperties: true } as const;
const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/** A string that is none of `known`: the `type` of a block or tool this schema does not know. */
function otherThan(known: readonly string[]): TString {
  return Type.String({ minLength: 1, pattern: `^(?!(?:${known.join('|')})$)` });
}

const CacheControl = Type.Object({ type: Type.String(), ttl: Type.Optional(Type.String()) }, Open);
const cached = { cache_control: Type.Optional(Nullable(CacheControl)) };

export const TextBlockSchema = Type.Object({
  type: Type.Literal('text'),
  text: Type.String(),
  citations: Type.Optional(Nullable(Type.Array(Type.Object({}, Open)))),
  ...cached,
}, Open);

/** The four image types Anthropic reads. */
export const IMAGE_MEDIA_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'] as const;

const Base64ImageSource = Type.Object({
  type: Type.Literal('base64'),
  media_type: Type.Union(IMAGE_MEDIA_TYPES.map((t) => Type.Literal(t))),
  data: Type.String({ minLength: 1 }),
}, Open);
const UrlSource = Type.Object({ type: Type.Literal('url'), url: Type.String({ minLength: 1 }) }, Open);
const FileSource = Type.Object({ type: Type.Literal('file'), file_id: Type.String({ minLength: 1 }) }, Open);

const ImageBlock = Type.Object({
  type: Type.Literal('image'),
  source: Type.Union([Base64ImageSource, UrlSource, FileSource]),
  ...cached,
}, Open);

const DocumentBlock = Type.Object({
  type: Type.Literal('document'),
  // base64 (PDF), text, content (blocks), url (PDF), file: each with its own fields.
  source: Type.Object({ type: Type.String({ minLength: 1 }) }, Open),
  title: Type.Optional(Nullable(Type.String())),
  context: Type.Optional(Nullable(Type.String())),
  citations: Type.Optional(Nullable(Type.Object({}, Open))),
  ...cached,
}, Open);

const SearchResultBlock = Type.Object({
  type: Type.Literal('search_result'),
  source: Type.String(),
  title: Type.String(),
  content: Type.Array(TextBlockSchema),
  ...cached,
}, Open);

const ToolUseBlock = Type.Object({
  type: Type.Literal('tool_use'),
  id: Type.String({ minLength: 1 }),
  name: Type.String({ minLength: 1 }),
  input: Type.Object({}, Open),
  ...cached,
}, Open);

const ToolResultContent = Type.Union([
  TextBlockSchema, ImageBlock, SearchResultBlock, DocumentBlock,
  Type.Object({ type: otherThan(['text', 'image', 'search_result', 'document']) }, Open),
]);
const ToolResultBlock = Type.Object({
  type: Type.Literal('tool_result'),
  tool_use_id: Type.String({ minLength: 1 }),
  content: Type.Optional(Type.Union([Type.String(), Type.Array(ToolResultContent)])),
  is_error: Type.Optional(Type.Boolean()),
  ...cached,
}, Open);

const ThinkingBlock = Type.Object({ type: Type.Literal('thinking'), thinking: Type.String(), signature: Type.String() }, Open);
const RedactedThinkingBlock = Type.Object({ type: Type.Literal('redacted_thinking'), data: Type.String() }, Open);

/** The block types the gateway reads; others (server tool blocks, container uploads, …) are Anthropic's alone. */
export const KNOWN_BLOCK_TYPES = ['text', 'image', 'document', 'search_result', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking'] as const;

const ContentBlock = Type.Union([
  TextBlockSchema, ImageBlock, DocumentBlock, SearchResultBlock, ToolUseBlock, ToolResultBlock, ThinkingBlock, RedactedThinkingBlock,
  Type.Object({ type: otherThan(KNOWN_BLOCK_TYPES) }, Open),
]);
const Content = Type.Union([Type.String(), Type.Array(ContentBlock)]);

/**
 * One turn. `system` turns are in the SDK's types (SDK 1.14 `SystemMessageParam`, text only) beside
 * the top-level `system`.
 */
const Message = Type.Union([
  Type.Object({ role: Type.Union([Type.Literal('user'), Type.Literal('assistant')]), content: Content }, Open),
  Type.Object({ role: Type.Literal('system'), content: Type.Union([Type.String(), Type.Array(TextBlockSchema)]) }, Open),
]);

const System = Type.Union([Type.String(), Type.Array(TextBlockSchema)]);

/** A tool the client defines and runs: `type` absent, null or `custom`. */
const CustomTool = Type.Object({
  type: Type.Optional(Nullable(Type.Literal('custom'))),
  name: Type.String({ minLength: 1, maxLength: 128 }),
  description: Type.Optional(Type.String()),
  input_schema: Type.Object({ type: Type.Literal('object') }, Open),
  ...cached,
}, Open);

/**
 * A tool whose definition is Anthropic's (`web_search_20250305`, `code_execution_…`, `bash_20250124`,
 * `text_editor_…`, …): a versioned `type` and a name.
 */
const AnthropicTool = Type.Object({ type: otherThan(['custom']), name: Type.String({ minLength: 1 }) }, Open);

const Tool = Type.Union([CustomTool, AnthropicTool]);

const ToolChoice = Type.Union([
  Type.Object({ type: Type.Literal('auto'), disable_parallel_tool_use: Type.Optional(Type.Boolean()) }, Open),
  Type.Object({ type: Type.Literal('any'), disable_parallel_tool_use: Type.Optional(Type.Boolean()) }, Open),
  Type.Object({ type: Type.Literal('tool'), name: Type.String({ minLength: 1 }), disable_parallel_tool_use: Type.Optional(Type.Boolean()) }, Open),
  Type.Object({ type: Type.Literal('none') }, Open),
]);

const Thinking = Type.Union([
  Type.Object({ type: Type.Literal('enabled'), budget_tokens: Type.Integer({ minimum: 1024 }) }, Open),
  Type.Object({ type: otherThan(['enabled']) }, Open),
]);

const Metadata = Type.Object({ user_id: Type.Optional(Nullable(Type.String())) }, Open);

/** What a Messages request and a token count request share. */
const promptFields = {
  model: Type.String({ minLength: 1, maxLength: 256 }),
  messages: Type.Array(Message, { minItems: 1 }),
  system: Type.Optional(System),
  tools: Type.Optional(Type.Array(Tool)),
  tool_choice: Type.Optional(ToolChoice),
  thinking: Type.Optional(Thinking),
};

export const MessagesRequestSchema = Type.Object({
  ...promptFields,
  // 0 is allowed: it warms the prompt cache without generating.
  max_tokens: Type.Integer({ minimum: 0 }),
  stop_sequences: Type.Optional(Type.Array(Type.String())),
  temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  top_p: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  top_k: Type.Optional(Type.Integer({ minimum: 0 })),
  metadata: Type.Optional(Metadata),
  stream: Type.Optional(Type.Boolean()),
  output_config: Type.Optional(Type.Object({}, Open)),
}, Open);
export type MessagesRequestPayload = Static<typeof MessagesRequestSchema>;

export const CountTokensRequestSchema = Type.Object(promptFields, Open);
export type CountTokensRequestPayload = Static<typeof CountTokensRequestSchema>;

export type ContentBlockPayload = Static<typeof ContentBlock>;
export type ToolPayload = Static<typeof Tool>;
