import { Type, type Static, type TLiteral, type TSchema, type TUnion } from '@sinclair/typebox';

/*
 * OpenAI's Responses request (`POST /v1/responses`), checked as the router receives it: close enough
 * to OpenAI's API (openai-node's `ResponseCreateParamsBase`) to reject what OpenAI rejects (a missing
 * model, an input item of a type OpenAI does not know, a function call without its call_id) while
 * every field it does not name passes on unchanged to OpenAI. Items and tools of OpenAI's built-in
 * tools pass the schema (OpenAI runs them); the translation to a local model refuses them clearly.
 */

const Open = { additionalProperties: true } as const;
const Nullable = <T extends TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));
const literals = <T extends string>(values: readonly T[]) => Type.Union(values.map((v) => Type.Literal(v))) as unknown as TUnion<TLiteral<T>[]>;

// --- content parts ---

const InputText = Type.Object({ type: Type.Literal('input_text'), text: Type.String() }, Open);
/** An image by URL (or data URL) or by the id of a file uploaded to OpenAI. */
const InputImage = Type.Object({
  type: Type.Literal('input_image'),
  image_url: Nullable(Type.String({ minLength: 1 })),
  file_id: Nullable(Type.String({ minLength: 1 })),
  detail: Type.Optional(Type.String()),
}, Open);
const InputFile = Type.Object({
  type: Type.Literal('input_file'),
  file_data: Nullable(Type.String()),
  file_id: Nullable(Type.String()),
  file_url: Nullable(Type.String()),
  filename: Nullable(Type.String()),
}, Open);
const InputAudio = Type.Object({ type: Type.Literal('input_audio'), input_audio: Type.Object({}, Open) }, Open);
/** An earlier assistant turn's text, as the API returned it. */
const OutputText = Type.Object({ type: Type.Literal('output_text'), text: Type.String() }, Open);
const Refusal = Type.Object({ type: Type.Literal('refusal'), refusal: Type.String() }, Open);

const ContentPart = Type.Union([InputText, InputImage, InputFile, InputAudio, OutputText, Refusal]);
export type ResponsesContentPart = Static<typeof ContentPart>;

// --- input items ---

/** A message; `{role, content}` without `type` is one too (OpenAI's EasyInputMessage). */
const MessageItem = Type.Object({
  type: Type.Optional(Type.Literal('message')),
  role: literals(['user', 'assistant', 'system', 'developer'] as const),
  content: Type.Union([Type.String(), Type.Array(ContentPart)]),
  id: Type.Optional(Type.String()),
  status: Type.Optional(Type.String()),
}, Open);

const FunctionCallItem = Type.Object({
  type: Type.Literal('function_call'),
  call_id: Type.String({ minLength: 1 }),
  name: Type.String({ minLength: 1 }),
  arguments: Type.String(),
  id: Type.Optional(Type.String()),
  status: Type.Optional(Type.String()),
}, Open);

const FunctionCallOutputItem = Type.Object({
  type: Type.Literal('function_call_output'),
  call_id: Type.String({ minLength: 1 }),
  output: Type.Union([Type.String(), Type.Array(ContentPart)]),
  id: Nullable(Type.String()),
  status: Nullable(Type.String()),
}, Open);

const ReasoningItem = Type.Object({
  type: Type.Literal('reasoning'),
  id: Type.Optional(Type.String()),
  summary: Type.Array(Type.Object({ type: Type.Literal('summary_text'), text: Type.String() }, Open)),
  content: Nullable(Type.Array(Type.Object({ type: Type.Literal('reasoning_text'), text: Type.String() }, Open))),
  encrypted_content: Nullable(Type.String()),
}, Open);

/** A reference to an item stored at OpenAI (`{id}` alone is one). */
const ItemReference = Type.Object({ type: Nullable(Type.Literal('item_reference')), id: Type.String({ minLength: 1 }) }, Open);

/**
 * Items of OpenAI's built-in and hosted tools (their calls and outputs, MCP approvals, compaction,
 * …): OpenAI takes them back as input; no other backend can. Checked only for their type.
 */
export const OPENAI_ONLY_ITEM_TYPES = [
  'file_search_call', 'computer_call', 'computer_call_output', 'web_search_call', 'tool_search_call', 'tool_search_output',
  'additional_tools', 'configuration_update', 'compaction', 'compaction_trigger', 'image_generation_call',
  'code_interpreter_call', 'local_shell_call', 'local_shell_call_output', 'shell_call', 'shell_call_output',
  'apply_patch_call', 'apply_patch_call_output', 'mcp_list_tools', 'mcp_approval_request', 'mcp_approval_response',
  'mcp_call', 'custom_tool_call', 'custom_tool_call_output', 'program', 'program_output',
] as const;
const OpenAIOnlyItem = Type.Object({ type: literals(OPENAI_ONLY_ITEM_TYPES) }, Open);

export const ResponsesInputItemSchema = Type.Union([
  MessageItem, FunctionCallItem, FunctionCallOutputItem, ReasoningItem, ItemReference, OpenAIOnlyItem,
]);
export type ResponsesInputItem = Static<typeof ResponsesInputItemSchema>;
export type ResponsesMessageItem = Static<typeof MessageItem>;
export type ResponsesFunctionCallItem = Static<typeof FunctionCallItem>;
export type ResponsesFunctionCallOutputItem = Static<typeof FunctionCallOutputItem>;

// --- tools ---

/** A function tool: flat, unlike chat's `{type, function: {…}}`. */
const FunctionTool = Type.Object({
  type: Type.Literal('function'),
  name: Type.String({ minLength: 1, maxLength: 128 }),
  description: Nullable(Type.String()),
  parameters: Nullable(Type.Object({}, Open)),
  strict: Nullable(Type.Boolean()),
}, Open);

/** OpenAI's built-in and hosted tools, by type: they run at OpenAI. */
export const BUILT_IN_TOOL_TYPES = [
  'file_search', 'computer', 'computer_use', 'computer_use_preview', 'web_search', 'web_search_2025_08_26',
  'web_search_preview', 'web_search_preview_2025_03_11', 'mcp', 'code_interpreter', 'programmatic_tool_calling',
  'image_generation', 'local_shell', 'shell', 'custom', 'namespace', 'tool_search', 'apply_patch',
] as const;
const BuiltInTool = Type.Object({ type: literals(BUILT_IN_TOOL_TYPES) }, Open);
export type ResponsesFunctionTool = Static<typeof FunctionTool>;

const ToolChoice = Type.Union([
  literals(['none', 'auto', 'required'] as const),
  Type.Object({ type: Type.Literal('function'), name: Type.String({ minLength: 1 }) }, Open),
  Type.Object({ type: Type.Literal('allowed_tools'), mode: literals(['auto', 'required'] as const), tools: Type.Array(Type.Object({}, Open)) }, Open),
  Type.Object({ type: Type.Literal('custom'), name: Type.String({ minLength: 1 }) }, Open),
  Type.Object({ type: Type.Literal('mcp'), server_label: Type.Optional(Type.String()), name: Nullable(Type.String()) }, Open),
  Type.Object({
    type: literals([
      'file_search', 'web_search_preview', 'web_search_preview_2025_03_11', 'computer', 'computer_use', 'computer_use_preview',
      'image_generation', 'code_interpreter', 'shell', 'apply_patch', 'programmatic_tool_calling',
    ] as const),
  }, Open),
]);
export type ResponsesToolChoice = Static<typeof ToolChoice>;

// --- output format ---

const TextFormat = Type.Union([
  Type.Object({ type: Type.Literal('text') }, Open),
  Type.Object({ type: Type.Literal('json_object') }, Open),
  Type.Object({
    type: Type.Literal('json_schema'),
    name: Type.String({ minLength: 1, maxLength: 64 }),
    schema: Type.Object({}, Open),
    strict: Nullable(Type.Boolean()),
    description: Type.Optional(Type.String()),
  }, Open),
]);
export type ResponsesTextFormat = Static<typeof TextFormat>;

export const ResponsesRequestSchema = Type.Object({
  model: Type.String({ minLength: 1, maxLength: 256 }),
  input: Type.Optional(Type.Union([Type.String(), Type.Array(ResponsesInputItemSchema)])),
  instructions: Nullable(Type.String()),
  tools: Type.Optional(Type.Array(Type.Union([FunctionTool, BuiltInTool]))),
  tool_choice: Type.Optional(ToolChoice),
  parallel_tool_calls: Nullable(Type.Boolean()),
  text: Type.Optional(Type.Object({ format: Type.Optional(TextFormat), verbosity: Nullable(Type.String()) }, Open)),
  reasoning: Nullable(Type.Object({ effort: Nullable(Type.String()), summary: Nullable(Type.String()) }, Open)),
  max_output_tokens: Nullable(Type.Integer({ minimum: 1 })),
  temperature: Nullable(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
  /** Up to 16 string pairs, as OpenAI allows. */
  metadata: Nullable(Type.Record(Type.String(), Type.String({ maxLength: 512 }), { maxProperties: 16 })),
  store: Nullable(Type.Boolean()),
  previous_response_id: Nullable(Type.String({ minLength: 1 })),
  stream: Nullable(Type.Boolean()),
  user: Type.Optional(Type.String()),
}, Open);
export type ResponsesRequestPayload = Static<typeof ResponsesRequestSchema>;
