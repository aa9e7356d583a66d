import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { GatewayError, toGatewayError, validator } from '@homelab/bus';
import { simText, simToken, startOpenAISimulator, type OpenAISimulatorOptions, type Simulator } from '@homelab/simulators';
import { afterEach, describe, expect, it } from 'vitest';
import { openAIChat } from '../openai-chat/index.ts';
import type { ChatChunk, ChatCompletion, TranslationContext } from '../types.ts';
import { ResponsesStreamEncoder, responseFromChat, responseIdFor } from './client-answer.ts';
import { openAIResponses } from './index.ts';
import { ResponsesRequestSchema } from './schema.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test access into wire JSON

const WEATHER = {
  type: 'function' as const, name: 'get_weather', description: 'The weather in a city', strict: true,
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
};

function context(overrides: Partial<TranslationContext> = {}): TranslationContext {
  return { requestId: 'req-1', model: 'm1', requestedModel: 'smart', created: 1_750_000_000, includeUsage: false, ...overrides };
}

// ---- a gateway in miniature: the Responses dialect in front of a chat backend (the vLLM simulator) ----

const check = validator(ResponsesRequestSchema);
let backend: Simulator | undefined;
let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
  await backend?.close();
  backend = undefined;
});

/**
 * Serves `POST /v1/responses` as a worker would for a backend that speaks only chat: validate,
 * translate to chat, ask the simulator, and encode its answer (JSON or chunks) as the Responses
 * API. Answers errors in the dialect's shape.
 */
async function startGateway(options: OpenAISimulatorOptions = {}): Promise<OpenAI> {
  backend = await startOpenAISimulator({ models: ['m1'], tokens: 5, ...options });
  const simulator = backend;
  server = createServer((req, res) => {
    void (async () => {
      const parts: Buffer[] = [];
      for await (const part of req) parts.push(part as Buffer);
      const body: unknown = JSON.parse(Buffer.concat(parts).toString('utf8'));
      const payload = check.parse(body);
      const stream = payload.stream === true;
      const ctx = context({ requestId: randomUUID(), requestedModel: payload.model });
      const internal = openAIResponses.requestToInternal!(payload);
      const chat = openAIChat.requestFromInternal!(internal, { model: 'm1', stream });
      const upstream = await fetch(`${simulator.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat) });
      if (!upstream.ok) throw new GatewayError('backend_error', `backend answered ${upstream.status}`);
      if (!stream) {
        const answer = openAIChat.answerToInternal!(await upstream.json(), ctx);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(openAIResponses.answerFromInternal!(answer, ctx, payload));
        return;
      }
      res.writeHead(200, { 'content-type': openAIResponses.framing!.contentType });
      const decoder = openAIChat.createDecoder!(ctx);
      const encoder = openAIResponses.createEncoder!(ctx, payload);
      try {
        for await (const bytes of upstream.body!) for (const chunk of decoder.push(bytes as Uint8Array)) res.write(encoder.push(chunk));
        res.end(encoder.end());
      } catch (err) {
        res.end(encoder.fail(toGatewayError(err, 'backend_error')));
      }
    })().catch((err: unknown) => {
      const error = openAIResponses.error(toGatewayError(err));
      if (res.headersSent) { res.destroy(); return; }
      res.writeHead(error.status, { 'content-type': 'application/json' });
      res.end(error.body);
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return new OpenAI({ apiKey: 'lab-key', baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
}

function chatRequests(): Json[] {
  return backend!.requests.map((r) => r.body as Json);
}

describe('Responses over a chat backend, read by the official openai SDK', () => {
  it('responses.create: output_text, usage, the echo of the request', async () => {
    const client = await startGateway();
    const response = await client.responses.create({ model: 'smart', input: 'What is the weather in Paris today?', instructions: 'Be brief.', metadata: { team: 'lab' }, temperature: 0.2 });
    expect(response.output_text).toBe(simText(5));
    expect(response).toMatchObject({
      id: expect.stringMatching(/^resp_[0-9a-f]{48}$/), object: 'response', status: 'completed', model: 'smart',
      instructions: 'Be brief.', metadata: { team: 'lab' }, temperature: 0.2, store: true, error: null, incomplete_details: null,
    });
    // The vLLM simulator counts the words of every message: 2 instructions + 7 input.
    expect(response.usage).toEqual({ input_tokens: 9, input_tokens_details: { cached_tokens: 0 }, output_tokens: 5, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 14 });
    expect(chatRequests()[0]).toMatchObject({ model: 'm1', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is the weather in Paris today?' }], temperature: 0.2 });
  });

  it('a function call round trip: function_call out, function_call_output back in, text out', async () => {
    const client = await startGateway();
    const first = await client.responses.create({ model: 'smart', input: 'Weather in Paris?', tools: [WEATHER] });
    expect(first.output).toHaveLength(1);
    const call = first.output[0]!;
    expect(call).toMatchObject({ type: 'function_call', status: 'completed', name: 'get_weather', call_id: expect.stringMatching(/^call_/) });
    if (call.type !== 'function_call') throw new Error('expected a function call');
    expect(JSON.parse(call.arguments)).toEqual({ city: 'sim' });
    expect(first.output_text).toBe('');

    const second = await client.responses.create({
      model: 'smart', tools: [WEATHER],
      input: [{ role: 'user', content: 'Weather in Paris?' }, call, { type: 'function_call_output', call_id: call.call_id, output: '21 degrees' }],
    });
    expect(second.output_text).toBe(simText(5));
    expect(chatRequests()[1]!.messages).toEqual([
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: call.call_id, type: 'function', function: { name: 'get_weather', arguments: call.arguments } }] },
      { role: 'tool', tool_call_id: call.call_id, content: '21 degrees' },
    ]);
    expect(chatRequests()[1]!.tools).toEqual([{ type: 'function', function: { name: 'get_weather', description: 'The weather in a city', parameters: WEATHER.parameters, strict: true } }]);
  });

  it('responses.create({stream: true}): the semantic events, in order, numbered, no [DONE]', async () => {
    const client = await startGateway();
    const stream = await client.responses.create({ model: 'smart', input: 'Hi there', stream: true });
    const events: Json[] = [];
    for await (const event of stream) events.push(event);
    expect(events.map((e) => e.type)).toEqual([
      'response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
      ...Array<string>(5).fill('response.output_text.delta'),
      'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed',
    ]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const completed = events.at(-1)!.response;
    expect(completed).toMatchObject({ status: 'completed', output: [{ type: 'message', content: [{ text: simText(5) }] }], usage: { input_tokens: 2, output_tokens: 5 } });
    expect(completed.id).toBe(events[0]!.response.id);
  });

  it('responses.stream(…).finalResponse(): reasoning, then the answer', async () => {
    const client = await startGateway({ reasoningTokens: 3 });
    const runner = client.responses.stream({ model: 'smart', input: 'Think first', reasoning: { effort: 'high' } });
    const deltas: string[] = [];
    runner.on('response.output_text.delta', (event) => deltas.push(event.delta));
    const final = await runner.finalResponse();
    expect(final.output.map((item) => item.type)).toEqual(['reasoning', 'message']);
    expect(final.output[0]).toMatchObject({ type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text: simText(3) }] });
    expect(final.output_text).toBe(simText(5));
    expect(deltas.join('')).toBe(simText(5));
    expect(final.reasoning).toEqual({ effort: 'high', summary: null });
    expect(chatRequests()[0]).toMatchObject({ reasoning_effort: 'high', stream: true, stream_options: { include_usage: true } });
  });

  it('responses.stream(…) with a function call: arguments arrive in deltas, the final item is whole', async () => {
    const client = await startGateway({ flavor: 'openai' });
    const runner = client.responses.stream({ model: 'smart', input: 'Weather in Oslo?', tools: [WEATHER], tool_choice: { type: 'function', name: 'get_weather' } });
    const final = await runner.finalResponse();
    expect(final.output).toHaveLength(1);
    expect(final.output[0]).toMatchObject({ type: 'function_call', status: 'completed', name: 'get_weather', arguments: '{"city":"sim"}' });
    expect(chatRequests()[0]!.tool_choice).toEqual({ type: 'function', function: { name: 'get_weather' } });
  });

  it('max_output_tokens: an incomplete response, streamed and whole', async () => {
    const client = await startGateway();
    const whole = await client.responses.create({ model: 'smart', input: 'Hi', max_output_tokens: 2 });
    expect(whole).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, output_text: simText(2) });
    expect(whole.output[0]).toMatchObject({ status: 'incomplete' });
    const events: Json[] = [];
    for await (const event of await client.responses.create({ model: 'smart', input: 'Hi', max_output_tokens: 2, stream: true })) events.push(event);
    expect(events.at(-1)).toMatchObject({ type: 'response.incomplete', response: { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } } });
    expect(chatRequests()[0]!.max_completion_tokens).toBe(2);
  });

  it('text.format json_schema reaches the model as response_format and comes back as output_text', async () => {
    const client = await startGateway();
    const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'], additionalProperties: false };
    const response = await client.responses.create({ model: 'smart', input: 'Who?', text: { format: { type: 'json_schema', name: 'person', schema, strict: true } } });
    expect(JSON.parse(response.output_text)).toEqual({ name: 'sim', age: 1 });
    expect(chatRequests()[0]!.response_format).toEqual({ type: 'json_schema', json_schema: { name: 'person', schema, strict: true } });
  });

  it('a backend that dies mid-stream: the SDK throws the error event as an APIError', async () => {
    const client = await startGateway({ faults: { dropAfterChunks: 2 } });
    const runner = client.responses.stream({ model: 'smart', input: 'Hi' });
    const deltas: string[] = [];
    runner.on('response.output_text.delta', (event) => deltas.push(event.delta));
    const error = await runner.finalResponse().then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as Error).message).toContain('terminated');
    expect(deltas).toEqual([simToken(0), simToken(1)]);
  });

  it('bad requests: OpenAI-shaped 400s that name the field, read by the SDK as BadRequestError', async () => {
    const client = await startGateway();
    const reject = async (body: Json): Promise<InstanceType<typeof OpenAI.BadRequestError>> => {
      const error = await client.responses.create(body as OpenAI.Responses.ResponseCreateParamsNonStreaming).then(() => undefined, (err: unknown) => err);
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      return error as InstanceType<typeof OpenAI.BadRequestError>;
    };
    const badType = await reject({ model: 'smart', input: 'x', temperature: 'hot' });
    expect(badType.param).toBe('temperature');
    const unknownItem = await reject({ model: 'smart', input: [{ role: 'user', content: 'x' }, { type: 'telepathy', payload: 1 }] });
    expect(unknownItem.param).toBe('input[1].type');
    expect(unknownItem.message).toContain("got 'telepathy'");
    const builtIn = await reject({ model: 'smart', input: 'Search the web', tools: [{ type: 'web_search' }] });
    expect(builtIn.param).toBe('tools[0].type');
    expect(builtIn.message).toContain("'web_search' is one of OpenAI's built-in tools, which only OpenAI runs");
    const missing = await reject({ input: 'x' });
    expect(missing.param).toBe('model');
    // Nothing of these reached the backend.
    expect(backend!.requests).toHaveLength(0);
  });
});

// ---- the translation without a network --------------------------------------------------------

function completion(message: Json, finishReason: string, usage?: Json): ChatCompletion {
  return {
    id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'm1',
    choices: [{ index: 0, message: { role: 'assistant', refusal: null, ...message }, logprobs: null, finish_reason: finishReason }],
    usage: usage ?? { prompt_tokens: 10, completion_tokens: 4, total_tokens: 14, prompt_tokens_details: { cached_tokens: 6 }, completion_tokens_details: { reasoning_tokens: 2 } },
  } as ChatCompletion;
}

describe('responseFromChat', () => {
  it('reasoning, text and tool calls become reasoning, message and function_call items in that order', () => {
    const response = responseFromChat(completion({
      content: 'Checking.', reasoning_content: 'The user wants weather.',
      tool_calls: [
        { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } },
        { id: 'call_b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
      ],
    }, 'tool_calls'), context(), {});
    expect(response.output.map((item) => item.type)).toEqual(['reasoning', 'message', 'function_call', 'function_call']);
    expect(response.output[0]).toEqual({ id: expect.stringMatching(/^rs_/), type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text: 'The user wants weather.' }] });
    expect(response.output[3]).toEqual({ id: expect.stringMatching(/^fc_/), type: 'function_call', status: 'completed', arguments: '{"city":"Rome"}', call_id: 'call_b', name: 'get_weather' });
    expect(response.usage).toEqual({ input_tokens: 10, input_tokens_details: { cached_tokens: 6 }, output_tokens: 4, output_tokens_details: { reasoning_tokens: 2 }, total_tokens: 14 });
    expect(response.id).toBe(responseIdFor('req-1'));
    expect(response).toMatchObject({ model: 'smart', created_at: 1_750_000_000, tools: [], tool_choice: 'auto', parallel_tool_calls: true, text: { format: { type: 'text' } } });
  });

  it('a cut-off answer is incomplete; a filtered one names its reason', () => {
    expect(responseFromChat(completion({ content: 'Half' }, 'length'), context(), {})).toMatchObject({
      status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, output: [{ type: 'message', status: 'incomplete' }],
    });
    expect(responseFromChat(completion({ content: '' }, 'content_filter'), context(), {}).incomplete_details).toEqual({ reason: 'content_filter' });
  });

  it('echoes the client request', () => {
    const request = { model: 'smart', input: 'x', previous_response_id: 'resp_1', store: false, tools: [WEATHER], tool_choice: 'required', text: { format: { type: 'json_object' } }, max_output_tokens: 50, user: 'u1' };
    expect(responseFromChat(completion({ content: '{}' }, 'stop'), context(), request)).toMatchObject({
      previous_response_id: 'resp_1', store: false, tools: [WEATHER], tool_choice: 'required', text: { format: { type: 'json_object' }, verbosity: 'medium' },
      max_output_tokens: 50, user: 'u1',
    });
  });
});

function chunk(delta: Json, finishReason: string | null = null, usage?: Json): ChatChunk {
  return { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm1', choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }], ...(usage && { usage }) } as ChatChunk;
}

function decodeEvents(text: string): Json[] {
  return text.split('\n\n').filter(Boolean).map((record) => {
    const [eventLine, dataLine] = record.split('\n');
    const data = JSON.parse(dataLine!.slice('data: '.length)) as Json;
    expect(eventLine).toBe(`event: ${data.type}`);
    return data;
  });
}

describe('ResponsesStreamEncoder', () => {
  it('text after a tool call opens a new message item; parallel calls stay open until the end', () => {
    const encoder = new ResponsesStreamEncoder(context(), {});
    let out = encoder.push(chunk({ role: 'assistant', tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'f', arguments: '' } }] }));
    out += encoder.push(chunk({ tool_calls: [{ index: 1, id: 'call_b', type: 'function', function: { name: 'g', arguments: '{"x":' } }] }));
    out += encoder.push(chunk({ tool_calls: [{ index: 0, function: { arguments: '{}' } }] }));
    out += encoder.push(chunk({ tool_calls: [{ index: 1, function: { arguments: '1}' } }] }));
    out += encoder.push(chunk({ content: 'Done.' }));
    out += encoder.push(chunk({}, 'stop'));
    out += encoder.push({ ...chunk({}), choices: [], usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } } as ChatChunk);
    out += encoder.end();
    const events = decodeEvents(out);
    expect(events.map((e) => `${e.type}${e.output_index === undefined ? '' : `#${e.output_index as number}`}`)).toEqual([
      'response.created', 'response.in_progress',
      'response.output_item.added#0', 'response.output_item.added#1', 'response.function_call_arguments.delta#1',
      'response.function_call_arguments.delta#0', 'response.function_call_arguments.delta#1',
      'response.function_call_arguments.done#0', 'response.output_item.done#0', 'response.function_call_arguments.done#1', 'response.output_item.done#1',
      'response.output_item.added#2', 'response.content_part.added#2', 'response.output_text.delta#2',
      'response.output_text.done#2', 'response.content_part.done#2', 'response.output_item.done#2', 'response.completed',
    ]);
    const final = events.at(-1)!.response;
    expect(final.output.map((item: Json) => [item.type, item.arguments ?? item.content[0].text])).toEqual([['function_call', '{}'], ['function_call', '{"x":1}'], ['message', 'Done.']]);
    expect(final.usage).toMatchObject({ input_tokens: 3, output_tokens: 4, total_tokens: 7 });
  });

  it('fail(): an error event, then response.failed with the output so far', () => {
    const encoder = new ResponsesStreamEncoder(context(), {});
    const out = encoder.push(chunk({ content: 'Hel' })) + encoder.fail(new GatewayError('backend_error', 'the backend went away'));
    const events = decodeEvents(out);
    expect(events.slice(-2)).toEqual([
      { type: 'error', code: 'backend_error', message: 'the backend went away', param: null, sequence_number: events.length - 2 },
      expect.objectContaining({ type: 'response.failed', response: expect.objectContaining({ status: 'failed', error: { code: 'server_error', message: 'the backend went away' } }) }),
    ]);
    expect(events.at(-1)!.response.output).toEqual([expect.objectContaining({ type: 'message', status: 'incomplete', content: [expect.objectContaining({ text: 'Hel' })] })]);
  });

  it('an answer with no chunks still opens and completes', () => {
    const events = decodeEvents(new ResponsesStreamEncoder(context(), {}).end());
    expect(events.map((e) => e.type)).toEqual(['response.created', 'response.in_progress', 'response.completed']);
  });

  it('after end(), `response` is the Response of response.completed (what the response store keeps)', () => {
    const encoder = new ResponsesStreamEncoder(context(), { instructions: 'Be brief.' });
    const out = encoder.push(chunk({ content: 'Hi' })) + encoder.push(chunk({}, 'stop', { prompt_tokens: 2, completion_tokens: 1, total_tokens: 3 }));
    expect(encoder.response).toBeUndefined();
    const events = decodeEvents(out + encoder.end());
    expect(encoder.response).toEqual(events.at(-1)!.response);
    expect(encoder.response).toMatchObject({ status: 'completed', instructions: 'Be brief.', usage: { input_tokens: 2, output_tokens: 1 } });
  });
});

describe('response ids', () => {
  it("the context's responseId names the Response and seeds its item ids; without one they derive from the request id", () => {
    const answer = completion({ content: 'Hi', tool_calls: [{ id: 'call_a', type: 'function', function: { name: 'f', arguments: '{}' } }] }, 'tool_calls');
    const a = responseFromChat(answer, context({ responseId: 'resp_aaa' }), {});
    const b = responseFromChat(answer, context({ responseId: 'resp_bbb' }), {});
    expect([a.id, b.id]).toEqual(['resp_aaa', 'resp_bbb']);
    // The same client request id, two answers: no item id in common.
    expect(a.output.map((item) => item.id).filter((id) => b.output.some((other) => other.id === id))).toEqual([]);
    const streamed = new ResponsesStreamEncoder(context({ responseId: 'resp_aaa' }), {});
    streamed.push(chunk({ content: 'Hi' }));
    streamed.end();
    expect(streamed.response).toMatchObject({ id: 'resp_aaa', output: [{ id: a.output.find((item) => item.type === 'message')!.id }] });
    expect(responseFromChat(answer, context(), {}).id).toBe(responseIdFor('req-1'));
  });
});
