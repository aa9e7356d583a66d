import type { Message, StopReason } from '@anthropic-ai/sdk/resources/messages';
import type { GatewayError } from '@homelab/bus';
import { describe, expect, it } from 'vitest';
import type { ChatChunk } from '../types.ts';
import {
  AnthropicChatStream, AnthropicStreamDecoder, anthropicAnswerToInternal, fromAnthropicMessage, fromAnthropicStopReason, type AnthropicStreamEvent,
} from './backend-answer.ts';
const MODEL = 'claude-haiku-4-5';
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

/** The events as Anthropic frames them on the wire. */
function sse(events: AnthropicStreamEvent[]): string {
  return events.map((event) => `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`).join('');
}

describe('AnthropicStreamDecoder', () => {
  it('gives the same chunks as the event translator, whatever the byte boundaries', () => {
    const bytes = Buffer.from(sse(toolStream));
    const expected = run(toolStream).chunks.map((c) => ({ ...c, created: 1_700_000_001 }));
    for (const size of [1, 7, 64, bytes.length]) {
      const decoder = new AnthropicStreamDecoder({ created: 1_700_000_001 });
      const chunks: ChatChunk[] = [];
      for (let at = 0; at < bytes.length; at += size) {
        expect(decoder.complete).toBe(false);
        chunks.push(...decoder.push(bytes.subarray(at, at + size)));
      }
      expect([size, chunks]).toEqual([size, expected]);
      expect(decoder.complete).toBe(true);
    }
  });

  it('skips comments, and ends at an error event or a malformed one', () => {
    const decoder = new AnthropicStreamDecoder({ created: 1 });
    expect(decoder.push(Buffer.from(`: keepalive\n\n${sse([toolStream[0]!])}`))).toHaveLength(1);
    expect(decoder.push(Buffer.from(sse([{ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }])))).toEqual([]);
    expect(decoder.error).toMatchObject({ code: 'backend_unavailable', message: 'anthropic: Overloaded' });
    const malformed = new AnthropicStreamDecoder({ created: 1 });
    expect(malformed.push(Buffer.from('event: message_start\ndata: {"type":\n\n'))).toEqual([]);
    expect(malformed.error).toMatchObject({ code: 'backend_error', message: 'anthropic sent a malformed stream event' });
  });
});

describe('anthropicAnswerToInternal', () => {
  it('translates a Message and refuses what is not one', () => {
    expect(anthropicAnswerToInternal(message({}), { created: 5 })).toEqual(fromAnthropicMessage(message({}), 5));
    for (const bad of [null, 'text', { type: 'error', error: { type: 'api_error', message: 'x' } }, { type: 'message', content: 'x' }]) {
      expect(() => anthropicAnswerToInternal(bad, { created: 5 })).toThrow(expect.objectContaining({ code: 'backend_error' }));
    }
  });
});
