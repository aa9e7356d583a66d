import type { Message, StopReason } from '@anthropic-ai/sdk/resources/messages';
import { GatewayError } from '@homelab/bus';
import { describe, expect, it } from 'vitest';
import type { ChatChunk, ChatRequest } from '../types.ts';
import { AnthropicChatStream, fromAnthropicMessage, toAnthropicRequest, fromAnthropicStopReason, type AnthropicStreamEvent } from './backend.ts';

const MODEL = 'claude-haiku-4-5';

/** OpenAI's function calling example tool. */
const weatherTool = {
  type: 'function' as const,
  function: {
    name: 'get_current_weather',
    description: 'Get the current weather in a given location',
    parameters: {
      type: 'object',
      properties: {
        location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      },
      required: ['location'],
    },
  },
};

/** An Anthropic Message as the API reference shows it, with the fields SDK 1.x adds. */
function message(overrides: Partial<Message>): Message {
  return {
    id: 'msg_013Zva2CMHLNnXjNJJKqJ2EF',
    type: 'message',
    role: 'assistant',
    model: MODEL,
    content: [{ type: 'text', text: 'Hi! My name is Claude.', citations: null }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    stop_details: null,
    container: null,
    diagnostics: null,
    usage: {
      input_tokens: 2095, output_tokens: 503, cache_creation_input_tokens: null, cache_read_input_tokens: null,
      cache_creation: null, inference_geo: null, output_tokens_details: null, server_tool_use: null, service_tier: 'standard', speed: null,
    },
    ...overrides,
  };
}

describe('toAnthropicRequest', () => {
  it('moves system and developer messages, wherever they are, into the top-level system prompt', () => {
    const body = toAnthropicRequest({
      model: MODEL,
      messages: [
        { role: 'system', content: 'You are a helpful assistant.' },
        { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] },
        { role: 'user', content: 'Hello!' },
        { role: 'assistant', content: 'Bonjour !' },
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'How are you?' },
      ],
    });
    expect(body).toEqual({
      model: MODEL,
      max_tokens: 4096,
      system: 'You are a helpful assistant.\n\nAnswer in French.\n\nBe brief.',
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Hello!' }] },
        { role: 'assistant', content: [{ type: 'text', text: 'Bonjour !' }] },
        { role: 'user', content: [{ type: 'text', text: 'How are you?' }] },
      ],
    });
  });

  it('merges consecutive same-role messages so turns alternate', () => {
    const body = toAnthropicRequest({
      model: MODEL,
      messages: [
        { role: 'user', content: 'Hello there.' },
        { role: 'user', content: 'Can you explain LLMs in plain English?' },
        { role: 'assistant', content: 'Sure.' },
        { role: 'assistant', content: [{ type: 'text', text: ' LLMs predict' }, { type: 'text', text: ' text.' }] },
        { role: 'user', content: '' },
        { role: 'user', content: 'Thanks' },
      ],
    });
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Hello there.' }, { type: 'text', text: 'Can you explain LLMs in plain English?' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'Sure.' }, { type: 'text', text: ' LLMs predict text.' }] },
      { role: 'user', content: [{ type: 'text', text: 'Thanks' }] },
    ]);
  });

  it('translates image parts: data URLs to base64 sources, http(s) URLs to url sources', () => {
    const body = toAnthropicRequest({
      model: MODEL,
      messages: [{
        role: 'user',
        content: [
          { type: 'text', text: 'What is in these images?' },
          { type: 'image_url', image_url: { url: 'data:image/jpeg;base64,/9j/4AAQSkZJRg==' } },
          { type: 'image_url', image_url: { url: 'https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg', detail: 'high' } },
        ],
      }],
    });
    expect(body.messages[0]!.content).toEqual([
      { type: 'text', text: 'What is in these images?' },
      { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: '/9j/4AAQSkZJRg==' } },
      { type: 'image', source: { type: 'url', url: 'https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg' } },
    ]);
  });

  it('rejects content Anthropic cannot take', () => {
    const audio: ChatRequest = { model: MODEL, messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }] }] };
    expect(() => toAnthropicRequest(audio)).toThrow(expect.objectContaining({ code: 'invalid_request', param: 'messages' }));
    const svg: ChatRequest = { model: MODEL, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/svg+xml;base64,PHN2Zz4=' } }] }] };
    expect(() => toAnthropicRequest(svg)).toThrow(GatewayError);
    expect(() => toAnthropicRequest({ model: MODEL, n: 2, messages: [{ role: 'user', content: 'hi' }] })).toThrow(expect.objectContaining({ code: 'invalid_request', param: 'n' }));
  });

  it('translates tools, tool calls and tool results (merged into one user turn, ids and arguments kept)', () => {
    const body = toAnthropicRequest({
      model: MODEL,
      tools: [weatherTool],
      messages: [
        { role: 'user', content: "What's the weather like in Boston and Paris today?" },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_abc123', type: 'function', function: { name: 'get_current_weather', arguments: '{\n"location": "Boston, MA"\n}' } },
            { id: 'call_def456', type: 'function', function: { name: 'get_current_weather', arguments: '{"location":"Paris","unit":"celsius"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_abc123', content: '{"temperature": 22, "unit": "celsius"}' },
        { role: 'tool', tool_call_id: 'call_def456', content: [{ type: 'text', text: '18 degrees' }] },
        { role: 'user', content: 'And tomorrow?' },
      ],
    });
    expect(body.tools).toEqual([{
      name: 'get_current_weather',
      description: 'Get the current weather in a given location',
      input_schema: weatherTool.function.parameters,
    }]);
    expect(body.tool_choice).toBeUndefined();
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: "What's the weather like in Boston and Paris today?" }] },
      {
        role: 'assistant',
        content: [
          { type: 'tool_use', id: 'call_abc123', name: 'get_current_weather', input: { location: 'Boston, MA' } },
          { type: 'tool_use', id: 'call_def456', name: 'get_current_weather', input: { location: 'Paris', unit: 'celsius' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_abc123', content: '{"temperature": 22, "unit": "celsius"}' },
          { type: 'tool_result', tool_use_id: 'call_def456', content: '18 degrees' },
          { type: 'text', text: 'And tomorrow?' },
        ],
      },
    ]);
  });

  it('rejects tool call arguments that are not JSON', () => {
    const request: ChatRequest = {
      model: MODEL,
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":' } }] },
      ],
    };
    expect(() => toAnthropicRequest(request)).toThrow(expect.objectContaining({ code: 'invalid_request', message: 'tool call arguments must be valid JSON' }));
  });

  it('maps tool_choice and parallel_tool_calls', () => {
    const base: ChatRequest = { model: MODEL, tools: [weatherTool], messages: [{ role: 'user', content: 'weather?' }] };
    expect(toAnthropicRequest({ ...base, tool_choice: 'auto' }).tool_choice).toEqual({ type: 'auto' });
    expect(toAnthropicRequest({ ...base, tool_choice: 'required' }).tool_choice).toEqual({ type: 'any' });
    expect(toAnthropicRequest({ ...base, tool_choice: 'none' }).tool_choice).toEqual({ type: 'none' });
    expect(toAnthropicRequest({ ...base, tool_choice: { type: 'function', function: { name: 'get_current_weather' } } }).tool_choice)
      .toEqual({ type: 'tool', name: 'get_current_weather' });
    expect(toAnthropicRequest({ ...base, parallel_tool_calls: false }).tool_choice).toEqual({ type: 'auto', disable_parallel_tool_use: true });
    expect(toAnthropicRequest({ ...base, tool_choice: 'required', parallel_tool_calls: false }).tool_choice).toEqual({ type: 'any', disable_parallel_tool_use: true });
    // Without tools, tool_choice has nothing to refer to and is left out.
    expect(toAnthropicRequest({ model: MODEL, tool_choice: 'auto', messages: [{ role: 'user', content: 'hi' }] })).not.toHaveProperty('tool_choice');
  });

  it('maps stop, max tokens, sampling and user', () => {
    const messages: ChatRequest['messages'] = [{ role: 'user', content: 'Say this is a test' }];
    expect(toAnthropicRequest({ model: MODEL, messages, stop: '\n' }).stop_sequences).toEqual(['\n']);
    expect(toAnthropicRequest({ model: MODEL, messages, stop: ['END', 'STOP'] }).stop_sequences).toEqual(['END', 'STOP']);
    expect(toAnthropicRequest({ model: MODEL, messages }).max_tokens).toBe(4096);
    expect(toAnthropicRequest({ model: MODEL, messages }, { defaultMaxTokens: 1000 }).max_tokens).toBe(1000);
    expect(toAnthropicRequest({ model: MODEL, messages, max_tokens: 300 }).max_tokens).toBe(300);
    expect(toAnthropicRequest({ model: MODEL, messages, max_tokens: 300, max_completion_tokens: 200 }).max_tokens).toBe(200);
    expect(toAnthropicRequest({ model: MODEL, messages, temperature: 1.7 }).temperature).toBe(1);
    expect(toAnthropicRequest({ model: MODEL, messages, temperature: -0.5 }).temperature).toBe(0);
    const both = toAnthropicRequest({ model: MODEL, messages, temperature: 0.2, top_p: 0.9 });
    expect([both.temperature, both.top_p]).toEqual([0.2, undefined]);
    expect(toAnthropicRequest({ model: MODEL, messages, top_p: 0.9 }).top_p).toBe(0.9);
    expect(toAnthropicRequest({ model: MODEL, messages, user: 'user-1234' }).metadata).toEqual({ user_id: 'user-1234' });
  });

  it('asks for JSON in the system prompt, with the schema for json_schema', () => {
    const messages: ChatRequest['messages'] = [{ role: 'system', content: 'Extract the event.' }, { role: 'user', content: 'Alice and Bob meet on Friday.' }];
    const schema = { type: 'object', properties: { name: { type: 'string' }, date: { type: 'string' } }, required: ['name', 'date'], additionalProperties: false };
    const object = toAnthropicRequest({ model: MODEL, messages, response_format: { type: 'json_object' } });
    expect(object.system).toBe('Extract the event.\n\nReply with a single valid JSON object and nothing else: no prose, no Markdown code fences.');
    const withSchema = toAnthropicRequest({ model: MODEL, messages, response_format: { type: 'json_schema', json_schema: { name: 'calendar_event', schema, strict: true } } });
    expect(withSchema.system).toContain(`conform to this JSON schema:\n${JSON.stringify(schema)}`);
    expect(toAnthropicRequest({ model: MODEL, messages, response_format: { type: 'text' } }).system).toBe('Extract the event.');
  });

  it('turns reasoning_effort into a thinking budget below max_tokens, without sampling changes', () => {
    const messages: ChatRequest['messages'] = [{ role: 'user', content: 'Are there an infinite number of prime numbers such that n mod 4 == 3?' }];
    const low = toAnthropicRequest({ model: MODEL, messages, reasoning_effort: 'low', temperature: 0.3 });
    expect(low).toMatchObject({ thinking: { type: 'enabled', budget_tokens: 1024 }, max_tokens: 4096 });
    expect(low).not.toHaveProperty('temperature');
    expect(toAnthropicRequest({ model: MODEL, messages, reasoning_effort: 'medium' })).toMatchObject({ thinking: { budget_tokens: 4096 }, max_tokens: 8192 });
    expect(toAnthropicRequest({ model: MODEL, messages, reasoning_effort: 'high' })).toMatchObject({ thinking: { budget_tokens: 16384 }, max_tokens: 20480 });
    expect(toAnthropicRequest({ model: MODEL, messages, reasoning_effort: 'high', max_completion_tokens: 32000 })).toMatchObject({ max_tokens: 32000 });
    expect(toAnthropicRequest({ model: MODEL, messages, reasoning_effort: 'none' })).not.toHaveProperty('thinking');
  });
});

describe('fromAnthropicMessage', () => {
  it('translates a text answer, with cache tokens counted in prompt_tokens', () => {
    const completion = fromAnthropicMessage(message({
      usage: { ...message({}).usage, input_tokens: 21, output_tokens: 393, cache_creation_input_tokens: 188086, cache_read_input_tokens: 100 },
    }), 1_700_000_000);
    expect(completion).toEqual({
      id: 'msg_013Zva2CMHLNnXjNJJKqJ2EF',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: MODEL,
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hi! My name is Claude.', refusal: null }, finish_reason: 'stop', logprobs: null }],
      usage: {
        prompt_tokens: 21 + 188086 + 100,
        completion_tokens: 393,
        total_tokens: 21 + 188086 + 100 + 393,
        prompt_tokens_details: { cached_tokens: 100, cache_write_tokens: 188086 },
      },
    });
  });

  it('translates tool_use blocks into tool_calls and thinking blocks into reasoning_content', () => {
    const completion = fromAnthropicMessage(message({
      content: [
        { type: 'thinking', thinking: 'The user wants the weather.', signature: 'EqQBCgIYAhIM' },
        { type: 'text', text: "I'll check the weather.", citations: null },
        { type: 'tool_use', id: 'toolu_01A09q90qw90lq917835lq9', name: 'get_weather', input: { location: 'San Francisco, CA', unit: 'celsius' }, caller: { type: 'direct' } },
      ],
      stop_reason: 'tool_use',
    }));
    const choice = completion.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message).toEqual({
      role: 'assistant',
      content: "I'll check the weather.",
      refusal: null,
      reasoning_content: 'The user wants the weather.',
      tool_calls: [{ id: 'toolu_01A09q90qw90lq917835lq9', type: 'function', function: { name: 'get_weather', arguments: '{"location":"San Francisco, CA","unit":"celsius"}' } }],
    });
    expect(completion.usage).toEqual({ prompt_tokens: 2095, completion_tokens: 503, total_tokens: 2598, prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 } });
  });

  it('gives null content when the answer is only a tool call', () => {
    const completion = fromAnthropicMessage(message({
      content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_time', input: {}, caller: { type: 'direct' } }],
      stop_reason: 'tool_use',
    }));
    expect(completion.choices[0]!.message.content).toBeNull();
    expect(completion.choices[0]!.message.tool_calls).toEqual([{ id: 'toolu_1', type: 'function', function: { name: 'get_time', arguments: '{}' } }]);
  });

  it('maps every stop_reason', () => {
    const table: Array<[StopReason | null, string]> = [
      ['end_turn', 'stop'], ['stop_sequence', 'stop'], ['pause_turn', 'stop'], [null, 'stop'], ['max_tokens', 'length'],
      ['model_context_window_exceeded', 'length'], ['tool_use', 'tool_calls'], ['refusal', 'content_filter'],
    ];
    for (const [reason, finish] of table) expect([reason, fromAnthropicStopReason(reason)]).toEqual([reason, finish]);
  });
});

/** A streamed tool call as Anthropic's streaming reference shows it: text, then tool input split over several deltas. */
const toolStream: AnthropicStreamEvent[] = [
  {
    type: 'message_start',
    message: {
      ...message({}), id: 'msg_014p7gG3wDgGV9EUtLvnow3U', content: [], stop_reason: null,
      usage: { ...message({}).usage, input_tokens: 472, output_tokens: 2, cache_read_input_tokens: 30, cache_creation_input_tokens: 5 },
    },
  },
  { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '', citations: null } },
  { type: 'ping' },
  { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Okay' } },
  { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ', let me check the weather:' } },
  { type: 'content_block_stop', index: 0 },
  { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', name: 'get_weather', input: {}, caller: { type: 'direct' } } },
  { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '' } },
  { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"location":' } },
  { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: ' "San Francisc' } },
  { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: 'o, CA", "unit": "fah' } },
  { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: 'renheit"}' } },
  { type: 'content_block_stop', index: 1 },
  {
    type: 'message_delta',
    delta: { stop_reason: 'tool_use', stop_sequence: null, stop_details: null, container: null },
    usage: { output_tokens: 89, input_tokens: null, cache_read_input_tokens: null, cache_creation_input_tokens: null, output_tokens_details: null, server_tool_use: null },
  },
  { type: 'message_stop' },
];

function run(events: AnthropicStreamEvent[]): { chunks: ChatChunk[]; stream: AnthropicChatStream } {
  const stream = new AnthropicChatStream(1_700_000_000);
  const chunks: ChatChunk[] = [];
  for (const event of events) {
    const chunk = stream.push(event);
    if (chunk) chunks.push(chunk);
  }
  return { chunks, stream };
}

describe('AnthropicChatStream', () => {
  it('turns a recorded tool call stream into the exact OpenAI chunks', () => {
    const { chunks, stream } = run(toolStream);
    const head = { id: 'msg_014p7gG3wDgGV9EUtLvnow3U', object: 'chat.completion.chunk', created: 1_700_000_000, model: MODEL };
    const choice = (delta: object, finish_reason: string | null = null) => ({ ...head, choices: [{ index: 0, delta, finish_reason, logprobs: null }] });
    expect(chunks).toEqual([
      choice({ role: 'assistant', content: '' }),
      choice({ content: 'Okay' }),
      choice({ content: ', let me check the weather:' }),
      choice({ tool_calls: [{ index: 0, id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', type: 'function', function: { name: 'get_weather', arguments: '' } }] }),
      choice({ tool_calls: [{ index: 0, function: { arguments: '{"location":' } }] }),
      choice({ tool_calls: [{ index: 0, function: { arguments: ' "San Francisc' } }] }),
      choice({ tool_calls: [{ index: 0, function: { arguments: 'o, CA", "unit": "fah' } }] }),
      choice({ tool_calls: [{ index: 0, function: { arguments: 'renheit"}' } }] }),
      choice({}, 'tool_calls'),
      {
        ...head,
        choices: [],
        usage: { prompt_tokens: 507, completion_tokens: 89, total_tokens: 596, prompt_tokens_details: { cached_tokens: 30, cache_write_tokens: 5 } },
      },
    ]);
    expect(stream.done).toBe(true);
    const args = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls?.[0]?.function?.arguments ?? []).join('');
    expect(JSON.parse(args)).toEqual({ location: 'San Francisco, CA', unit: 'fahrenheit' });
  });

  it('counts tool calls from 0 whatever the block index, and streams thinking as reasoning_content', () => {
    const { chunks, stream } = run([
      toolStream[0]!,
      { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Two cities' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'EqQBCgIYAhIM' } },
      { type: 'content_block_stop', index: 0 },
      { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_a', name: 'get_weather', input: {}, caller: { type: 'direct' } } },
      { type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'toolu_b', name: 'get_time', input: {}, caller: { type: 'direct' } } },
      { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{}' } },
    ]);
    expect(chunks.slice(1).map((c) => c.choices[0]!.delta)).toEqual([
      { reasoning_content: 'Two cities' },
      { tool_calls: [{ index: 0, id: 'toolu_a', type: 'function', function: { name: 'get_weather', arguments: '' } }] },
      { tool_calls: [{ index: 1, id: 'toolu_b', type: 'function', function: { name: 'get_time', arguments: '' } }] },
      { tool_calls: [{ index: 1, function: { arguments: '{}' } }] },
    ]);
    expect(stream.done).toBe(false);
  });

  it('maps stop reasons on message_delta', () => {
    const end = toolStream[13] as Extract<AnthropicStreamEvent, { type: 'message_delta' }>;
    const { chunks } = run([toolStream[0]!, { ...end, delta: { ...end.delta, stop_reason: 'max_tokens' } }]);
    expect(chunks[1]!.choices[0]!.finish_reason).toBe('length');
  });

  it('throws a GatewayError on an error event', () => {
    const stream = new AnthropicChatStream();
    stream.push(toolStream[0]!);
    const codeOf = (type: string): unknown => {
      try {
        stream.push({ type: 'error', error: { type, message: 'Overloaded' } });
      } catch (err) {
        return [(err as GatewayError).code, (err as GatewayError).retryable];
      }
      return 'no error';
    };
    expect(codeOf('overloaded_error')).toEqual(['backend_unavailable', true]);
    expect(codeOf('rate_limit_error')).toEqual(['rate_limited', true]);
    expect(codeOf('api_error')).toEqual(['backend_error', true]);
  });
});
