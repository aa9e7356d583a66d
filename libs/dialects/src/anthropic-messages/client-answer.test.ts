import { GatewayError } from '@homelab/bus';
import { describe, expect, it } from 'vitest';
import type { ChatChunk, ChatCompletion, Completion, TranslationContext } from '../types.ts';
import {
  ANTHROPIC_PING, AnthropicStreamEncoder, anthropicAnswerFromInternal, anthropicMessageFromChat, anthropicMessageId, toAnthropicStopReason, toAnthropicUsage,
} from './client-answer.ts';

const CONTEXT: TranslationContext = { requestId: 'req-7f3a-19', model: 'Qwen/Qwen3-Coder-30B', requestedModel: 'coder', created: 1_700_000_000, includeUsage: false };

function completion(message: Record<string, unknown>, finish: string, usage?: ChatCompletion['usage']): ChatCompletion {
  return {
    id: 'chatcmpl-1', object: 'chat.completion', created: 1_700_000_000, model: CONTEXT.model,
    choices: [{ index: 0, message: { role: 'assistant', content: null, refusal: null, ...message }, finish_reason: finish, logprobs: null }],
    ...(usage && { usage }),
  } as ChatCompletion;
}

/** A chunk as vLLM streams it. */
function chunk(delta: Record<string, unknown>, finish: string | null = null): ChatChunk {
  return { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: CONTEXT.model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] } as ChatChunk;
}

function usageChunk(prompt: number, completionTokens: number, cached = 0): ChatChunk {
  return {
    id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: CONTEXT.model, choices: [],
    usage: { prompt_tokens: prompt, completion_tokens: completionTokens, total_tokens: prompt + completionTokens, prompt_tokens_details: { cached_tokens: cached } },
  };
}

/** The events of an encoded stream, checking each is `event: <type>` then `data: <json with that type>`. */
function events(text: string): Record<string, unknown>[] {
  expect(text.endsWith('\n\n')).toBe(true);
  return text.slice(0, -2).split('\n\n').map((frame) => {
    const [eventLine, dataLine, ...rest] = frame.split('\n');
    expect(rest).toEqual([]);
    const data = JSON.parse(dataLine!.slice('data: '.length)) as Record<string, unknown>;
    expect(eventLine).toBe(`event: ${String(data['type'])}`);
    return data;
  });
}

function encode(chunks: ChatChunk[]): Record<string, unknown>[] {
  const encoder = new AnthropicStreamEncoder(CONTEXT);
  return events(chunks.map((c) => encoder.push(c)).join('') + encoder.end());
}

describe('anthropicMessageFromChat', () => {
  it('gives thinking, text and tool_use blocks, the stop reason, and usage without the cached tokens in input_tokens', () => {
    const message = anthropicMessageFromChat(completion({
      content: "I'll check.",
      reasoning_content: 'The user wants the weather.',
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } }],
    }, 'tool_calls', { prompt_tokens: 120, completion_tokens: 30, total_tokens: 150, prompt_tokens_details: { cached_tokens: 100 } }), CONTEXT);
    expect(message).toEqual({
      id: 'msg_req7f3a19',
      type: 'message',
      role: 'assistant',
      model: 'coder',
      content: [
        { type: 'thinking', thinking: 'The user wants the weather.', signature: '' },
        { type: 'text', text: "I'll check." },
        { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { location: 'Paris' } },
      ],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 20, cache_creation_input_tokens: 0, cache_read_input_tokens: 100, output_tokens: 30 },
    });
  });

  it('reads vLLM\'s newer `reasoning` field, and calls a tool call a tool_use even when the backend says stop', () => {
    const message = anthropicMessageFromChat(completion({
      reasoning: 'hmm', tool_calls: [{ id: 'call_2', type: 'function', function: { name: 'ls', arguments: '' } }],
    }, 'stop'), CONTEXT);
    expect(message.content).toEqual([{ type: 'thinking', thinking: 'hmm', signature: '' }, { type: 'tool_use', id: 'call_2', name: 'ls', input: {} }]);
    expect(message.stop_reason).toBe('tool_use');
    expect(message.usage).toEqual({ input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 });
  });

  it('gives OpenAI\'s refusal as text with stop_reason refusal, streamed or not', () => {
    const message = anthropicMessageFromChat(completion({ refusal: "I can't help with that." }, 'stop'), CONTEXT);
    expect([message.content, message.stop_reason]).toEqual([[{ type: 'text', text: "I can't help with that." }], 'refusal']);
    const all = encode([chunk({ role: 'assistant', refusal: "I can't" }), chunk({ refusal: ' help.' }), chunk({}, 'stop')]);
    expect(all.filter((e) => e['type'] === 'content_block_delta').map((e) => (e['delta'] as { text: string }).text).join('')).toBe("I can't help.");
    expect(all.at(-2)).toMatchObject({ delta: { stop_reason: 'refusal' } });
  });

  it('says plainly when the model wrote tool arguments that are not JSON', () => {
    const bad = completion({ tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"a":' } }] }, 'tool_calls');
    expect(() => anthropicMessageFromChat(bad, CONTEXT)).toThrow(expect.objectContaining({ code: 'backend_error', message: 'the model answered a tool call whose arguments are not valid JSON' }));
  });

  it('maps every finish reason, and usage with cache writes', () => {
    const table: [string | null, boolean, string][] = [
      ['stop', false, 'end_turn'], [null, false, 'end_turn'], ['length', false, 'max_tokens'], ['tool_calls', false, 'tool_use'],
      ['function_call', false, 'tool_use'], ['content_filter', false, 'refusal'], ['stop', true, 'tool_use'], ['length', true, 'tool_use'],
    ];
    for (const [finish, tools, stop] of table) {
      expect([finish, tools, toAnthropicStopReason(finish as ChatCompletion['choices'][number]['finish_reason'], tools)]).toEqual([finish, tools, stop]);
    }
    const usage = { prompt_tokens: 1000, completion_tokens: 5, total_tokens: 1005, prompt_tokens_details: { cached_tokens: 600, cache_write_tokens: 300 } };
    expect(toAnthropicUsage(usage as ChatCompletion['usage'])).toEqual({ input_tokens: 100, cache_creation_input_tokens: 300, cache_read_input_tokens: 600, output_tokens: 5 });
  });

  it('answers JSON text for chat completions only', () => {
    expect(JSON.parse(anthropicAnswerFromInternal(completion({ content: 'Hi' }, 'stop'), CONTEXT))).toMatchObject({ type: 'message', content: [{ type: 'text', text: 'Hi' }] });
    const text: Completion = { id: 'cmpl-1', object: 'text_completion', created: 1, model: 'm', choices: [] };
    expect(() => anthropicAnswerFromInternal(text, CONTEXT)).toThrow(TypeError);
    expect(anthropicMessageId('')).toMatch(/^msg_[a-z0-9]+$/);
  });
});

describe('AnthropicStreamEncoder', () => {
  it('writes Anthropic\'s exact event sequence for a text answer', () => {
    const all = encode([chunk({ role: 'assistant', content: '' }), chunk({ content: 'Hello' }), chunk({ content: '!' }), chunk({}, 'stop'), usageChunk(12, 2)]);
    expect(all).toEqual([
      {
        type: 'message_start',
        message: {
          id: 'msg_req7f3a19', type: 'message', role: 'assistant', model: 'coder', content: [], stop_reason: null, stop_sequence: null,
          usage: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 },
        },
      },
      { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: '!' } },
      { type: 'content_block_stop', index: 0 },
      {
        type: 'message_delta',
        delta: { stop_reason: 'end_turn', stop_sequence: null },
        usage: { input_tokens: 12, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 2 },
      },
      { type: 'message_stop' },
    ]);
  });

  it('starts a block when the kind changes (reasoning → text → tool calls) and one per tool call, by index', () => {
    const all = encode([
      chunk({ role: 'assistant', reasoning_content: 'Two ' }),
      chunk({ reasoning: 'cities.' }),
      chunk({ content: 'Checking both.' }),
      chunk({ tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '{"location":' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }),
      chunk({ tool_calls: [{ index: 1, id: 'call_b', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Oslo"}' } }] }),
      chunk({}, 'tool_calls'),
      usageChunk(50, 40, 10),
    ]);
    expect(all.slice(1)).toEqual([
      { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Two ' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'cities.' } },
      { type: 'content_block_stop', index: 0 },
      { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } },
      { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'Checking both.' } },
      { type: 'content_block_stop', index: 1 },
      { type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'call_a', name: 'get_weather', input: {} } },
      { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{"location":' } },
      { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '"Paris"}' } },
      { type: 'content_block_stop', index: 2 },
      { type: 'content_block_start', index: 3, content_block: { type: 'tool_use', id: 'call_b', name: 'get_weather', input: {} } },
      { type: 'content_block_delta', index: 3, delta: { type: 'input_json_delta', partial_json: '{"location":"Oslo"}' } },
      { type: 'content_block_stop', index: 3 },
      {
        type: 'message_delta',
        delta: { stop_reason: 'tool_use', stop_sequence: null },
        usage: { input_tokens: 40, cache_creation_input_tokens: 0, cache_read_input_tokens: 10, output_tokens: 40 },
      },
      { type: 'message_stop' },
    ]);
  });

  it('ends an empty answer properly, and maps the finish reason', () => {
    expect(encode([]).map((e) => e['type'])).toEqual(['message_start', 'message_delta', 'message_stop']);
    expect(encode([chunk({ content: 'cut' }), chunk({}, 'length')]).at(-2)).toMatchObject({ delta: { stop_reason: 'max_tokens' }, usage: { output_tokens: 0 } });
  });

  it('starts a tool call\'s block at its arguments, when its header came before reasoning or text', () => {
    const all = encode([
      chunk({ role: 'assistant', content: '' }),
      chunk({ tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '' } }] }),
      chunk({ reasoning_content: 'Paris.' }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '{"location":"Paris"}' } }] }),
      chunk({ tool_calls: [{ index: 1, id: 'call_b', type: 'function', function: { name: 'now', arguments: '' } }] }),
      chunk({}, 'tool_calls'),
    ]);
    expect(all.slice(1, -2)).toEqual([
      { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Paris.' } },
      { type: 'content_block_stop', index: 0 },
      { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'call_a', name: 'get_weather', input: {} } },
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"location":"Paris"}' } },
      { type: 'content_block_stop', index: 1 },
      // A call that never got arguments still gets its block, at the end.
      { type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'call_b', name: 'now', input: {} } },
      { type: 'content_block_stop', index: 2 },
    ]);
    expect(all.at(-2)).toMatchObject({ delta: { stop_reason: 'tool_use' } });
  });

  it('refuses interleaved tool call arguments, which Anthropic\'s blocks cannot carry', () => {
    const encoder = new AnthropicStreamEncoder(CONTEXT);
    encoder.push(chunk({ tool_calls: [{ index: 0, id: 'a', function: { name: 'f', arguments: '{' } }] }));
    encoder.push(chunk({ tool_calls: [{ index: 1, id: 'b', function: { name: 'g', arguments: '{' } }] }));
    expect(() => encoder.push(chunk({ tool_calls: [{ index: 0, function: { arguments: '}' } }] }))).toThrow(expect.objectContaining({ code: 'backend_error' }));
  });

  it('fails with Anthropic\'s error event, and pings with Anthropic\'s ping event', () => {
    const encoder = new AnthropicStreamEncoder(CONTEXT);
    encoder.push(chunk({ content: 'Hel' }));
    expect(encoder.fail(new GatewayError('backend_unavailable', 'vllm went away')))
      .toBe('event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"vllm went away"}}\n\n');
    expect(ANTHROPIC_PING).toBe('event: ping\ndata: {"type": "ping"}\n\n');
  });
});
