import type { AnswerFacts } from '../types.ts';
import type { CountTokensRequestPayload } from './schema.ts';

/*
 * `POST /v1/messages/count_tokens` for a model Anthropic does not serve, and `GET /v1/models` in
 * Anthropic's shape. Claude models' counts come from Anthropic (the request passes through); a vLLM
 * model's from vLLM's `/tokenize` (the worker sends it `anthropicPromptToChat(body)`); for a backend
 * without a tokenizer endpoint (Ollama, OpenAI), `estimateInputTokens` approximates, as documented
 * in docs/dialects.md: clients use the count to decide when a conversation must be compacted, so the
 * estimate errs high rather than low.
 */

/** Plain ASCII text: about 4 characters a token in the BPE tokenizers of Llama, Qwen, Mistral and GPT. */
const ASCII_CHARS_PER_TOKEN = 4;
/** Role markers and separators a chat template adds per turn. */
const TOKENS_PER_TURN = 4;
/** A template's tool-calling instructions when tools are given, beside the tool definitions themselves. */
const TOKENS_FOR_TOOL_USE = 100;
/** An image of unknown size counts as the largest Anthropic sends a model (about 1.15 megapixels). */
const TOKENS_PER_IMAGE_MAX = 1600;
/** Anthropic's documented image cost: width × height / 750, for images scaled to at most ~1.15 MP. */
const PIXELS_PER_IMAGE_TOKEN = 750;
/** Anthropic's documented PDF cost is 1,500 to 3,000 tokens a page (its text and its picture). */
const TOKENS_PER_PDF_PAGE = 2000;

/** The answer of count_tokens, as JSON text. */
export function countTokensAnswer(inputTokens: number): string {
  return JSON.stringify({ input_tokens: inputTokens });
}

/** The facts of a count_tokens answer passing through. */
export function readCountTokensAnswer(bytes: Uint8Array): AnswerFacts {
  const parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as { input_tokens?: unknown };
  return typeof parsed.input_tokens === 'number' ? { inputTokens: parsed.input_tokens } : {};
}

/** Tokens of text: ASCII at 4 characters a token, every other character a token of its own (CJK, emoji). */
export function estimateTextTokens(text: string): number {
  let ascii = 0;
  let other = 0;
  for (const ch of text) {
    if (ch.charCodeAt(0) < 0x80) ascii++;
    else other++;
  }
  return Math.ceil(ascii / ASCII_CHARS_PER_TOKEN) + other;
}

type Json = Record<string, unknown>;

/** The approximate input tokens of a prompt, for a backend that cannot count them. */
export function estimateInputTokens(body: CountTokensRequestPayload): number {
  let tokens = 0;
  const system = body.system;
  if (typeof system === 'string') tokens += TOKENS_PER_TURN + estimateTextTokens(system);
  else if (system) tokens += TOKENS_PER_TURN + system.reduce((sum, block) => sum + estimateTextTokens(block.text), 0);
  for (const turn of body.messages) {
    tokens += TOKENS_PER_TURN;
    const content = turn.content as string | Json[];
    if (typeof content === 'string') tokens += estimateTextTokens(content);
    else for (const block of content) tokens += blockTokens(block);
  }
  if (body.tools?.length) {
    tokens += TOKENS_FOR_TOOL_USE;
    for (const tool of body.tools as Json[]) {
      const { cache_control: _cache, ...definition } = tool;
      tokens += estimateTextTokens(JSON.stringify(definition));
    }
  }
  return tokens;
}

function blockTokens(block: Json): number {
  switch (block['type']) {
    case 'text':
      return estimateTextTokens(String(block['text'] ?? ''));
    case 'image':
      return imageTokens(block['source'] as Json | undefined);
    case 'tool_use':
      return estimateTextTokens(String(block['name'] ?? '')) + estimateTextTokens(JSON.stringify(block['input'] ?? {}));
    case 'tool_result': {
      const content = block['content'];
      if (typeof content === 'string') return estimateTextTokens(content);
      return Array.isArray(content) ? (content as Json[]).reduce((sum, inner) => sum + blockTokens(inner), 0) : 0;
    }
    case 'document':
      return documentTokens(block);
    case 'search_result': {
      const texts = Array.isArray(block['content']) ? (block['content'] as Json[]).map((t) => String(t['text'] ?? '')) : [];
      return estimateTextTokens([block['title'], block['source'], ...texts].join('\n'));
    }
    default:
      // Earlier thinking is stripped from the prompt (as Anthropic and local templates do); other blocks: their JSON.
      return block['type'] === 'thinking' || block['type'] === 'redacted_thinking' ? 0 : estimateTextTokens(JSON.stringify(block));
  }
}

function documentTokens(block: Json): number {
  const source = (block['source'] ?? {}) as Json;
  const heading = estimateTextTokens([block['title'], block['context']].filter((line) => typeof line === 'string' && line !== '').join('\n'));
  if (source['type'] === 'text') return heading + estimateTextTokens(String(source['data'] ?? ''));
  if (source['type'] === 'content') {
    const content = source['content'];
    if (typeof content === 'string') return heading + estimateTextTokens(content);
    return heading + (Array.isArray(content) ? (content as Json[]).reduce((sum, inner) => sum + blockTokens(inner), 0) : 0);
  }
  if (source['type'] === 'base64' && typeof source['data'] === 'string') return heading + pdfPages(source['data']) * TOKENS_PER_PDF_PAGE;
  return heading + TOKENS_PER_PDF_PAGE;
}

/** A PDF's pages, counted by their `/Type /Page` objects (at least one: compressed object streams hide them). */
function pdfPages(base64: string): number {
  const text = Buffer.from(base64, 'base64').toString('latin1');
  const pages = text.match(/\/Type\s*\/Page(?![a-zA-Z])/g)?.length ?? 0;
  return Math.max(1, pages);
}

/** Anthropic's formula on the image's own size where its header tells it (PNG, GIF, JPEG), else the maximum. */
function imageTokens(source: Json | undefined): number {
  if (source?.['type'] !== 'base64' || typeof source['data'] !== 'string') return TOKENS_PER_IMAGE_MAX;
  const size = imageSize(source['data']);
  if (!size) return TOKENS_PER_IMAGE_MAX;
  return Math.min(TOKENS_PER_IMAGE_MAX, Math.max(1, Math.ceil((size.width * size.height) / PIXELS_PER_IMAGE_TOKEN)));
}

/** Width and height from an image's header; JPEG's frame header may lie further in, so up to 64 KiB are decoded. */
export function imageSize(base64: string): { width: number; height: number } | undefined {
  const head = Buffer.from(base64.slice(0, 87_384), 'base64');
  // PNG: signature, then the IHDR chunk with width and height (big-endian) at bytes 16 and 20.
  if (head.length >= 24 && head.readUInt32BE(0) === 0x89504e47 && head.toString('latin1', 12, 16) === 'IHDR') {
    return { width: head.readUInt32BE(16), height: head.readUInt32BE(20) };
  }
  // GIF: "GIF8", then the logical screen size (little-endian) at bytes 6 and 8.
  if (head.length >= 10 && head.toString('latin1', 0, 4) === 'GIF8') return { width: head.readUInt16LE(6), height: head.readUInt16LE(8) };
  // JPEG: walk the segments to a start-of-frame marker (C0–CF but C4, C8, CC), which holds height then width.
  if (head.length >= 4 && head[0] === 0xff && head[1] === 0xd8) {
    let at = 2;
    while (at + 9 < head.length && head[at] === 0xff) {
      const marker = head[at + 1]!;
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { width: head.readUInt16BE(at + 7), height: head.readUInt16BE(at + 5) };
      }
      at += 2 + head.readUInt16BE(at + 2);
    }
  }
  return undefined;
}

/** A model as `GET /v1/models` lists it for Anthropic clients. */
export interface AnthropicModelInfo {
  type: 'model';
  id: string;
  display_name: string;
  created_at: string;
}

export interface AnthropicModelPage {
  data: AnthropicModelInfo[];
  has_more: boolean;
  first_id: string | null;
  last_id: string | null;
}

/** What the gateway knows of a model (an entry of its OpenAI-shaped list will do). */
export interface ModelFacts {
  id: string;
  /** Seconds since epoch. */
  created?: number;
  display_name?: string;
}

/** One model in Anthropic's shape (`GET /v1/models/{model_id}`). */
export function anthropicModel(model: ModelFacts): AnthropicModelInfo {
  return {
    type: 'model',
    id: model.id,
    display_name: model.display_name ?? model.id,
    created_at: new Date((model.created ?? 0) * 1000).toISOString().replace('.000Z', 'Z'),
  };
}

/**
 * `GET /v1/models` in Anthropic's shape, one page of it: `limit` (Anthropic's default 20, at most
 * 1000), and `after_id` / `before_id` for the next and previous pages, as the SDK's auto-pagination
 * asks for them. An id that is not in the list gives an empty page.
 */
export function anthropicModelList(models: readonly ModelFacts[], query: { limit?: number; afterId?: string; beforeId?: string } = {}): AnthropicModelPage {
  const limit = Math.min(1000, Math.max(1, Math.trunc(query.limit ?? 20)));
  let start = 0;
  let end = models.length;
  if (query.afterId !== undefined) start = models.findIndex((m) => m.id === query.afterId) + 1 || models.length;
  if (query.beforeId !== undefined) {
    const before = models.findIndex((m) => m.id === query.beforeId);
    end = before < 0 ? 0 : before;
    start = Math.max(start, end - limit);
  }
  const page = models.slice(start, Math.min(end, start + limit)).map(anthropicModel);
  const hasMore = query.beforeId !== undefined ? start > 0 && page.length > 0 : start + page.length < models.length && page.length > 0;
  return { data: page, has_more: hasMore, first_id: page[0]?.id ?? null, last_id: page.at(-1)?.id ?? null };
}
