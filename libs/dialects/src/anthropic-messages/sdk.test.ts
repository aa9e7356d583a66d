import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Anthropic, {
  APIError, AuthenticationError, BadRequestError, GatewayTimeoutError, InternalServerError, NotFoundError, OverloadedError, PermissionDeniedError, RateLimitError,
} from '@anthropic-ai/sdk';
import type { MessageParam } from '@anthropic-ai/sdk/resources/messages';
import { GatewayError, type ErrorCode } from '@homelab/bus';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChatChunk, ChatCompletion, ChatRequest, TranslationContext } from '../types.ts';
import { AnthropicStreamEncoder, anthropicAnswerFromInternal, anthropicMessageFromChat } from './client-answer.ts';
import { anthropicRequestToInternal } from './client-request.ts';
import { anthropicModelList, countTokensAnswer, estimateInputTokens } from './count-tokens.ts';
import { anthropicError, anthropicErrorHeaders } from './errors.ts';
import type { CountTokensRequestPayload, MessagesRequestPayload } from './schema.ts';

/*
 * The official Anthropic SDK reads what the dialect writes: the encoder's events and the translated
 * Message are served from a real HTTP server on loopback, so the SDK's own SSE parser and
 * MessageStream accumulation prove the wire format.
 */

interface Seen {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}
interface Reply {
  status?: number;
  headers?: Record<string, string>;
  /** The body, or the pieces of a streamed body, written one by one. */
  body: string | string[];
}

let server: Server | undefined;
afterEach(async () => {
  const closing = server;
  server = undefined;
  if (closing) await new Promise<void>((resolve) => closing.close(() => resolve()));
});

/** An HTTP server on 127.0.0.1 that answers every request with `reply(request)`, and an SDK client for it. */
async function serve(reply: (seen: Seen) => Reply, options: { maxRetries?: number } = {}): Promise<{ client: Anthropic; seen: Seen[] }> {
  const seen: Seen[] = [];
  server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8');
      const request: Seen = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: text ? JSON.parse(text) : undefined };
      seen.push(request);
      const answer = reply(request);
      const streamed = Array.isArray(answer.body);
      res.writeHead(answer.status ?? 200, { 'content-type': streamed ? 'text/event-stream' : 'application/json', 'request-id': 'req_test', ...answer.headers });
      const pieces = typeof answer.body === 'string' ? [answer.body] : answer.body;
      // One write per piece, each in its own turn, so the SDK reads events cut across reads.
      const writeNext = (i: number): void => {
        if (i === pieces.length) {
          res.end();
          return;
        }
        res.write(pieces[i]);
        setImmediate(() => writeNext(i + 1));
      };
      writeNext(0);
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = new Anthropic({ apiKey: 'sk-lab-test', baseURL: `http://127.0.0.1:${port}`, maxRetries: options.maxRetries ?? 0, logLevel: 'off' });
  return { client, seen };
}

const CONTEXT: TranslationContext = { requestId: 'req-42', model: 'Qwen/Qwen3-32B', requestedModel: 'local-smart', created: 1_700_000_000, includeUsage: false };
const WEATHER = {
  name: 'get_weather',
  description: 'Get the current weather in a given location',
  input_schema: { type: 'object' as const, properties: { location: { type: 'string' } }, required: ['location'] },
};

function chunk(delta: Record<string, unknown>, finish: string | null = null): ChatChunk {
  return { id: 'chatcmpl-9', object: 'chat.completion.chunk', created: 1, model: CONTEXT.model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] } as ChatChunk;
}
function usage(prompt: number, completion: number): ChatChunk {
  return { id: 'chatcmpl-9', object: 'chat.completion.chunk', created: 1, model: CONTEXT.model, choices: [], usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } };
}

/** The encoder's output for these chunks, one piece per chunk (and the closing events). */
function encoded(chunks: ChatChunk[], fail?: GatewayError): string[] {
  const encoder = new AnthropicStreamEncoder(CONTEXT);
  const pieces = chunks.map((c) => encoder.push(c)).filter((p) => p !== '');
  pieces.push(fail ? encoder.fail(fail) : encoder.end());
  return pieces;
}

/** The chat completion that the same chunks add up to. */
function completionOf(message: Record<string, unknown>, finish: string, prompt: number, completionTokens: number): ChatCompletion {
  return {
    id: 'chatcmpl-9', object: 'chat.completion', created: 1, model: CONTEXT.model,
    choices: [{ index: 0, message: { role: 'assistant', content: null, refusal: null, ...message }, finish_reason: finish, logprobs: null }],
    usage: { prompt_tokens: prompt, completion_tokens: completionTokens, total_tokens: prompt + completionTokens },
  } as ChatCompletion;
}

const thinkingChunks = [
  chunk({ role: 'assistant', content: '' }),
  chunk({ reasoning_content: 'The user greets me. ' }),
  chunk({ reasoning_content: 'Greet back.' }),
  chunk({ content: 'Hello' }),
  chunk({ content: ', Ada!' }),
  chunk({}, 'stop'),
  usage(25, 9),
];

const toolChunks = [
  chunk({ role: 'assistant', content: 'Let me check the weather.' }),
  chunk({ tool_calls: [{ index: 0, id: 'call_paris', type: 'function', function: { name: 'get_weather', arguments: '' } }] }),
  chunk({ tool_calls: [{ index: 0, function: { arguments: '{"locat' } }] }),
  chunk({ tool_calls: [{ index: 0, function: { arguments: 'ion": "Paris"}' } }] }),
  chunk({ tool_calls: [{ index: 1, id: 'call_oslo', type: 'function', function: { name: 'get_weather', arguments: '{"location": "Oslo"}' } }] }),
  chunk({}, 'tool_calls'),
  usage(310, 44),
];

describe('the Anthropic SDK reads the encoder', () => {
  it('streams thinking and text into the same Message the non-streamed translation gives', async () => {
    const { client, seen } = await serve(() => ({ body: encoded(thinkingChunks) }));
    const stream = client.messages.stream({ model: 'local-smart', max_tokens: 1024, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'Hi, I am Ada' }] });
    const texts: string[] = [];
    const thoughts: string[] = [];
    stream.on('text', (text) => texts.push(text));
    stream.on('thinking', (thinking) => thoughts.push(thinking));
    const final = await stream.finalMessage();
    expect(texts.join('')).toBe('Hello, Ada!');
    expect(thoughts.join('')).toBe('The user greets me. Greet back.');
    // parsed_output is the SDK's own addition (structured outputs), not on the wire.
    const { parsed_output: parsed, ...message } = final;
    expect(parsed).toBeNull();
    expect(message).toEqual(anthropicMessageFromChat(completionOf({ content: 'Hello, Ada!', reasoning_content: 'The user greets me. Greet back.' }, 'stop', 25, 9), CONTEXT));
    expect(final).toMatchObject({ id: 'msg_req42', model: 'local-smart', stop_reason: 'end_turn', usage: { input_tokens: 25, output_tokens: 9 } });
    expect(seen[0]).toMatchObject({ method: 'POST', path: '/v1/messages', body: { stream: true } });
  });

  it('reads a non-streamed Message', async () => {
    const answer = completionOf({ content: 'Hello, Ada!' }, 'length', 25, 9);
    const { client } = await serve(() => ({ body: anthropicAnswerFromInternal(answer, CONTEXT) }));
    const message = await client.messages.create({ model: 'local-smart', max_tokens: 9, messages: [{ role: 'user', content: 'Hi' }] });
    expect(message).toEqual({
      id: 'msg_req42', type: 'message', role: 'assistant', model: 'local-smart', content: [{ type: 'text', text: 'Hello, Ada!' }],
      stop_reason: 'max_tokens', stop_sequence: null, usage: { input_tokens: 25, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 9 },
    });
  });

  it('completes a tool use round trip: streamed tool calls in, tool results back out as the internal form', async () => {
    const { client, seen } = await serve((request) => {
      const body = request.body as { messages: unknown[] };
      if (body.messages.length === 1) return { body: encoded(toolChunks) };
      return { body: encoded([chunk({ content: 'Paris 15°C, Oslo 3°C.' }), chunk({}, 'stop'), usage(400, 12)]) };
    });
    const messages: MessageParam[] = [{ role: 'user', content: 'Weather in Paris and Oslo?' }];
    const first = await client.messages.stream({ model: 'local-smart', max_tokens: 1024, tools: [WEATHER], messages }).finalMessage();
    expect(first.stop_reason).toBe('tool_use');
    expect(first.content).toEqual([
      { type: 'text', text: 'Let me check the weather.' },
      { type: 'tool_use', id: 'call_paris', name: 'get_weather', input: { location: 'Paris' } },
      { type: 'tool_use', id: 'call_oslo', name: 'get_weather', input: { location: 'Oslo' } },
    ]);

    messages.push({ role: 'assistant', content: first.content as MessageParam['content'] });
    messages.push({
      role: 'user',
      content: first.content.flatMap((block) => block.type === 'tool_use'
        ? [{ type: 'tool_result' as const, tool_use_id: block.id, content: (block.input as { location: string }).location === 'Paris' ? '15°C' : '3°C' }]
        : []),
    });
    const second = await client.messages.stream({ model: 'local-smart', max_tokens: 1024, tools: [WEATHER], messages }).finalMessage();
    expect(second.content).toEqual([{ type: 'text', text: 'Paris 15°C, Oslo 3°C.' }]);

    // What the SDK sent back translates into the chat form a local model takes.
    const internal = anthropicRequestToInternal(seen[1]!.body as MessagesRequestPayload);
    expect((internal.request as ChatRequest).messages).toEqual([
      { role: 'user', content: 'Weather in Paris and Oslo?' },
      {
        role: 'assistant',
        content: 'Let me check the weather.',
        tool_calls: [
          { id: 'call_paris', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } },
          { id: 'call_oslo', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Oslo"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_paris', content: '15°C' },
      { role: 'tool', tool_call_id: 'call_oslo', content: '3°C' },
    ]);
  });

  it('raises the error of an event: error in the middle of a stream, after the content before it', async () => {
    const { client } = await serve(() => ({ body: encoded([chunk({ content: 'Hel' })], new GatewayError('backend_unavailable', 'vllm went away mid-answer')) }));
    const stream = client.messages.stream({ model: 'local-smart', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }] });
    const texts: string[] = [];
    stream.on('text', (text) => texts.push(text));
    const error = await stream.finalMessage().then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(APIError);
    expect(error).toMatchObject({ type: 'overloaded_error', error: { type: 'error', error: { type: 'overloaded_error', message: 'vllm went away mid-answer' } } });
    expect(texts).toEqual(['Hel']);
  });
});

describe('the Anthropic SDK reads the errors', () => {
  const table: [ErrorCode, number, new (...args: never[]) => APIError, string][] = [
    ['invalid_request', 400, BadRequestError, 'invalid_request_error'],
    ['invalid_api_key', 401, AuthenticationError, 'authentication_error'],
    ['forbidden', 403, PermissionDeniedError, 'permission_error'],
    ['model_not_found', 404, NotFoundError, 'not_found_error'],
    ['rate_limited', 429, RateLimitError, 'rate_limit_error'],
    ['budget_exceeded', 429, RateLimitError, 'rate_limit_error'],
    ['backend_error', 500, InternalServerError, 'api_error'],
    ['timeout', 504, GatewayTimeoutError, 'timeout_error'],
    ['backend_unavailable', 529, OverloadedError, 'overloaded_error'],
  ];

  it('as its own error classes, with the message and type', async () => {
    for (const [code, status, errorClass, type] of table) {
      const gatewayError = new GatewayError(code, `${code} happened`);
      const { status: sent, body } = anthropicError(gatewayError);
      const { client } = await serve(() => ({ status: sent, body, headers: anthropicErrorHeaders(gatewayError) }));
      const error = await client.messages.create({ model: 'local-smart', max_tokens: 9, messages: [{ role: 'user', content: 'Hi' }] }).then(() => undefined, (err: unknown) => err);
      expect([code, error instanceof errorClass]).toEqual([code, true]);
      expect(error).toMatchObject({ status, type, requestID: 'req_test' });
      expect((error as APIError).message).toContain(`${code} happened`);
      await new Promise<void>((resolve) => server!.close(() => resolve()));
      server = undefined;
    }
  });

  it('retries what the router may retry, and not a spent budget', async () => {
    const spent = new GatewayError('budget_exceeded', "the daily cloud token budget of key 'ci' (1000 tokens) is used up");
    const { client, seen } = await serve(() => ({ ...anthropicError(spent), headers: anthropicErrorHeaders(spent) }), { maxRetries: 2 });
    const error = await client.messages.create({ model: 'claude-x', max_tokens: 9, messages: [{ role: 'user', content: 'Hi' }] }).then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(RateLimitError);
    expect((error as APIError).message).toContain('a spending budget, not a rate limit: retrying will not help');
    expect(seen).toHaveLength(1);

    await new Promise<void>((resolve) => server!.close(() => resolve()));
    const busy = new GatewayError('saturated', 'every backend is busy', { retryAfterMs: 1 });
    let calls = 0;
    const retried = await serve(() => (++calls === 1 ? { ...anthropicError(busy), headers: anthropicErrorHeaders(busy) } : { body: anthropicAnswerFromInternal(completionOf({ content: 'ok' }, 'stop', 1, 1), CONTEXT) }), { maxRetries: 2 });
    const message = await retried.client.messages.create({ model: 'claude-x', max_tokens: 9, messages: [{ role: 'user', content: 'Hi' }] });
    expect(message.content).toEqual([{ type: 'text', text: 'ok' }]);
    expect(retried.seen).toHaveLength(2);
  });
});

describe('the Anthropic SDK reads count_tokens and the model list', () => {
  it('counts tokens', async () => {
    const { client, seen } = await serve((request) => ({ body: countTokensAnswer(estimateInputTokens(request.body as CountTokensRequestPayload)) }));
    const counted = await client.messages.countTokens({ model: 'local-smart', system: 'Be brief.', tools: [WEATHER], messages: [{ role: 'user', content: 'Weather in Paris?' }] });
    expect(counted).toEqual({ input_tokens: estimateInputTokens(seen[0]!.body as CountTokensRequestPayload) });
    expect(counted.input_tokens).toBeGreaterThan(100);
    expect(seen[0]!.path).toBe('/v1/messages/count_tokens');
  });

  it('pages through the models as the SDK asks for them', async () => {
    const models = ['claude-sonnet-4-5', 'smart', 'coder', 'Qwen/Qwen3-32B', 'llama3.2:3b'].map((id, i) => ({ id, created: 1_750_000_000 + i }));
    const { client, seen } = await serve((request) => {
      const query = new URL(request.path, 'http://x').searchParams;
      return { body: JSON.stringify(anthropicModelList(models, { limit: Number(query.get('limit') ?? 20), ...(query.has('after_id') && { afterId: query.get('after_id')! }) })) };
    });
    const ids: string[] = [];
    for await (const model of client.models.list({ limit: 2 })) ids.push(model.id);
    expect(ids).toEqual(models.map((m) => m.id));
    expect(seen.map((s) => s.path)).toEqual(['/v1/models?limit=2', '/v1/models?limit=2&after_id=smart', '/v1/models?limit=2&after_id=Qwen%2FQwen3-32B']);
    const one = await client.models.list();
    expect(one.data[0]).toEqual({ type: 'model', id: 'claude-sonnet-4-5', display_name: 'claude-sonnet-4-5', created_at: '2025-06-15T15:06:40Z' });
  });
});
