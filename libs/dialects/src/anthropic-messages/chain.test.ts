import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Anthropic from '@anthropic-ai/sdk';
import type { MessageParam } from '@anthropic-ai/sdk/resources/messages';
import { validator } from '@homelab/bus';
import { simText, startAnthropicSimulator, startOpenAISimulator, type AnthropicSimulator, type Simulator } from '@homelab/simulators';
import { afterEach, describe, expect, it } from 'vitest';
import { openAIChat } from '../openai-chat/index.ts';
import type { AnswerFacts, ChatChunk, ChatCompletion, TranslationContext } from '../types.ts';
import { anthropicMessages } from './index.ts';
import { MessagesRequestSchema } from './schema.ts';

/*
 * The dialect's parts chained as the worker will chain them, between the official SDK and the
 * backend simulators: a pass-through to Anthropic (bytes unchanged both ways, the watch reading the
 * facts), and a translation to vLLM (Anthropic request → chat → vLLM, and vLLM's stream → chat
 * chunks → Anthropic events). The little gateway here is only the glue the worker will be.
 */

const check = validator(MessagesRequestSchema);
const SIM_KEY = 'sk-ant-sim';

let gateway: Server | undefined;
let backend: Simulator | undefined;
afterEach(async () => {
  const server = gateway;
  gateway = undefined;
  if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  await backend?.close();
  backend = undefined;
});

async function readBytes(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** Serves `handle` on loopback and gives an SDK client pointed at it, as Claude Code points at the gateway. */
async function startGateway(handle: (bytes: Buffer, req: IncomingMessage, res: ServerResponse) => Promise<void>): Promise<Anthropic> {
  gateway = createServer((req, res) => {
    readBytes(req).then((bytes) => handle(bytes, req, res)).catch((err: unknown) => {
      res.destroy(err as Error);
    });
  });
  await new Promise<void>((resolve) => gateway!.listen(0, '127.0.0.1', resolve));
  const { port } = gateway.address() as AddressInfo;
  return new Anthropic({ authToken: 'lab-key', apiKey: null, baseURL: `http://127.0.0.1:${port}`, maxRetries: 0, logLevel: 'off' });
}

describe('pass-through: an Anthropic client and an Anthropic backend', () => {
  /** What the gateway saw of the one request, for the test to compare. */
  const trace = { sent: [] as Buffer[], fromBackend: [] as Buffer[], toClient: [] as Buffer[], facts: {} as AnswerFacts, complete: false };

  async function passThroughGateway(sim: AnthropicSimulator): Promise<Anthropic> {
    return startGateway(async (bytes, req, res) => {
      const body = check.parse(JSON.parse(bytes.toString('utf8')));
      const { stream } = anthropicMessages.routing(body);
      const out = Buffer.from(anthropicMessages.passThrough!(bytes, { model: 'claude-test', stream }));
      trace.sent.push(out);
      const beta = req.headers['anthropic-beta'];
      const upstream = await fetch(`${sim.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'anthropic-version': String(req.headers['anthropic-version']), ...(beta && { 'anthropic-beta': String(beta) }), 'x-api-key': SIM_KEY },
        body: out,
      });
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
      if (!stream) {
        const answer = Buffer.from(await upstream.arrayBuffer());
        trace.fromBackend.push(answer);
        trace.toClient.push(answer);
        trace.facts = anthropicMessages.readAnswer!(answer);
        res.end(answer);
        return;
      }
      const watch = anthropicMessages.watch!({ includeUsage: false });
      for await (const piece of upstream.body as unknown as AsyncIterable<Uint8Array>) {
        trace.fromBackend.push(Buffer.from(piece));
        const forward = watch.push(piece);
        if (forward) {
          trace.toClient.push(Buffer.from(forward));
          res.write(forward);
        }
      }
      const tail = watch.flush();
      if (tail) trace.toClient.push(Buffer.from(tail));
      trace.facts = watch.facts;
      trace.complete = watch.complete;
      res.end(tail);
    });
  }

  it('keeps thinking, cache_control and the beta header, and the answer\'s bytes, and reads its facts', async () => {
    const sim = await startAnthropicSimulator({ models: ['claude-test'], tokens: 6, apiKey: SIM_KEY });
    backend = sim;
    const client = await passThroughGateway(sim);
    const params = {
      model: 'fast',
      max_tokens: 4096,
      thinking: { type: 'enabled' as const, budget_tokens: 2048 },
      system: [{ type: 'text' as const, text: 'You are a careful assistant. '.repeat(30), cache_control: { type: 'ephemeral' as const } }],
      messages: [{ role: 'user' as const, content: 'Hello, Claude' }],
    };
    const options = { headers: { 'anthropic-beta': 'interleaved-thinking-2025-05-14' } };
    const final = await client.messages.stream(params, options).finalMessage();

    // The backend got the client's bytes but the model; the client got the backend's bytes.
    expect(sim.requests[0]!.raw.equals(trace.sent[0]!)).toBe(true);
    expect(JSON.parse(trace.sent[0]!.toString())).toEqual({ ...params, model: 'claude-test', stream: true });
    expect(sim.requests[0]!.headers['anthropic-beta']).toBe('interleaved-thinking-2025-05-14');
    expect(Buffer.concat(trace.toClient).equals(Buffer.concat(trace.fromBackend))).toBe(true);

    expect(final.content.map((b) => b.type)).toEqual(['thinking', 'text']);
    expect(final.content[0]).toMatchObject({ thinking: 'Let me think about this request.', signature: expect.stringMatching(/.{8}/) as string });
    const { usage } = final;
    expect(usage.cache_creation_input_tokens).toBeGreaterThan(0);
    expect(trace.complete).toBe(true);
    expect(trace.facts).toEqual({
      responseModel: 'claude-test', finishReason: 'end_turn', outputTokens: usage.output_tokens,
      inputTokens: usage.input_tokens + usage.cache_creation_input_tokens! + usage.cache_read_input_tokens!,
    });

    // The same prompt again reads the cache; a non-streamed answer passes through too.
    const again = await client.messages.create({ ...params, max_tokens: 3000 }, options);
    expect(trace.toClient[trace.toClient.length - 1]!.equals(trace.fromBackend[trace.fromBackend.length - 1]!)).toBe(true);
    expect(again.usage.cache_read_input_tokens).toBe(usage.cache_creation_input_tokens);
    expect(trace.facts).toMatchObject({ cachedTokens: usage.cache_creation_input_tokens, outputTokens: again.usage.output_tokens });
  });
});

describe('translation: an Anthropic client and a vLLM backend', () => {
  async function translatingGateway(sim: Simulator): Promise<Anthropic> {
    let requests = 0;
    return startGateway(async (bytes, _req, res) => {
      const body = check.parse(JSON.parse(bytes.toString('utf8')));
      const { stream, model } = anthropicMessages.routing(body);
      const context: TranslationContext = { requestId: `req-${++requests}`, model: 'Qwen/Qwen3-8B', requestedModel: model, created: 1_700_000_000, includeUsage: false };
      const internal = anthropicMessages.requestToInternal!(body);
      const upstream = await fetch(`${sim.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(openAIChat.requestFromInternal!(internal, { model: context.model, stream })),
      });
      expect(upstream.status).toBe(200);
      if (!stream) {
        const answer = openAIChat.answerToInternal!(await upstream.json(), context) as ChatCompletion;
        res.writeHead(200, { 'content-type': 'application/json' }).end(anthropicMessages.answerFromInternal!(answer, context, body));
        return;
      }
      res.writeHead(200, { 'content-type': anthropicMessages.framing!.contentType });
      const decoder = openAIChat.createDecoder!(context);
      const encoder = anthropicMessages.createEncoder!(context, body);
      for await (const piece of upstream.body as unknown as AsyncIterable<Uint8Array>) {
        for (const chunk of decoder.push(piece)) res.write(encoder.push(chunk as ChatChunk));
      }
      expect(decoder.complete).toBe(true);
      res.end(encoder.end());
    });
  }

  it('answers a streamed tool use round trip, with the model\'s reasoning as thinking', async () => {
    const sim = await startOpenAISimulator({ flavor: 'vllm', models: ['Qwen/Qwen3-8B'], tokens: 4, reasoningTokens: 3 });
    backend = sim;
    const client = await translatingGateway(sim);
    const tools = [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object' as const, properties: { location: { type: 'string' } }, required: ['location'] } }];
    const messages: MessageParam[] = [{ role: 'user', content: 'Weather in Paris?' }];

    const first = await client.messages.stream({ model: 'local', max_tokens: 512, tools, thinking: { type: 'enabled', budget_tokens: 1024 }, messages }).finalMessage();
    expect(first).toMatchObject({ model: 'local', stop_reason: 'tool_use', id: 'msg_req1' });
    expect(first.content.map((b) => b.type)).toEqual(['thinking', 'tool_use']);
    expect(first.content[0]).toMatchObject({ thinking: simText(3) });
    const call = first.content[1] as Anthropic.ToolUseBlock;
    expect(call).toMatchObject({ name: 'get_weather', input: { location: expect.any(String) as string } });
    expect(first.usage.input_tokens).toBeGreaterThan(0);
    // What vLLM got: the chat form, the thinking budget as an effort.
    expect(sim.requests[0]!.body).toMatchObject({ model: 'Qwen/Qwen3-8B', reasoning_effort: 'low', max_completion_tokens: 512, stream: true, stream_options: { include_usage: true } });

    messages.push({ role: 'assistant', content: first.content as MessageParam['content'] });
    messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: '15°C, cloudy' }] });
    const second = await client.messages.stream({ model: 'local', max_tokens: 512, tools, messages }).finalMessage();
    expect(second.content).toEqual([{ type: 'thinking', thinking: simText(3), signature: '' }, { type: 'text', text: simText(4) }]);
    expect(second.stop_reason).toBe('end_turn');
    expect((sim.requests[1]!.body as { messages: unknown[] }).messages.slice(1)).toEqual([
      { role: 'assistant', content: null, tool_calls: [{ id: call.id, type: 'function', function: { name: 'get_weather', arguments: JSON.stringify(call.input) } }] },
      { role: 'tool', tool_call_id: call.id, content: '15°C, cloudy' },
    ]);
  });

  it('answers a non-streamed request cut by max_tokens', async () => {
    backend = await startOpenAISimulator({ flavor: 'vllm', models: ['Qwen/Qwen3-8B'], tokens: 8 });
    const client = await translatingGateway(backend);
    const message = await client.messages.create({ model: 'local', max_tokens: 3, system: 'Be brief.', messages: [{ role: 'user', content: 'Count' }] });
    expect(message).toMatchObject({ type: 'message', model: 'local', content: [{ type: 'text', text: simText(3) }], stop_reason: 'max_tokens', usage: { output_tokens: 3 } });
  });
});
