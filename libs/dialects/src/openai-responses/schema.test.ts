import { GatewayError, validator } from '@homelab/bus';
import { describe, expect, it } from 'vitest';
import { ResponsesRequestSchema } from './schema.ts';

const check = validator(ResponsesRequestSchema);

function rejection(body: unknown): { param: string | null; message: string } {
  try {
    check.parse(body);
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return { param: (err as GatewayError).param, message: (err as GatewayError).message };
  }
  throw new Error('the body was accepted');
}

describe('ResponsesRequestSchema', () => {
  it('takes what openai-node sends: every input item kind, flat function tools, built-in tools, unknown fields', () => {
    const body = {
      model: 'gpt-5', instructions: 'Be brief.', store: true, stream: false, previous_response_id: null, user: 'u',
      input: [
        { role: 'user', content: 'Hi' },
        { type: 'message', role: 'developer', content: [{ type: 'input_text', text: 'x' }] },
        { type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'https://x/y.png', detail: 'auto' }, { type: 'input_image', file_id: 'file-1', detail: 'high' }, { type: 'input_file', file_id: 'file-2' }] },
        { type: 'message', role: 'assistant', id: 'msg_1', status: 'completed', content: [{ type: 'output_text', text: 'Hello', annotations: [] }, { type: 'refusal', refusal: 'no' }] },
        { type: 'reasoning', id: 'rs_1', summary: [{ type: 'summary_text', text: 's' }], encrypted_content: 'gAAA' },
        { type: 'function_call', id: 'fc_1', call_id: 'call_1', name: 'f', arguments: '{}', status: 'completed' },
        { type: 'function_call_output', call_id: 'call_1', output: 'ok' },
        { type: 'item_reference', id: 'msg_0' },
        { id: 'msg_2' },
        { type: 'web_search_call', id: 'ws_1', status: 'completed', action: { type: 'search', query: 'q' } },
        { type: 'mcp_approval_response', approval_request_id: 'a', approve: true },
      ],
      tools: [
        { type: 'function', name: 'f', description: null, parameters: { type: 'object', properties: {} }, strict: true },
        { type: 'web_search' }, { type: 'file_search', vector_store_ids: ['vs_1'] }, { type: 'mcp', server_label: 'deepwiki', server_url: 'https://x' },
      ],
      tool_choice: { type: 'allowed_tools', mode: 'auto', tools: [{ type: 'function', name: 'f' }] },
      parallel_tool_calls: true,
      text: { format: { type: 'json_schema', name: 'n', schema: { type: 'object' }, strict: true }, verbosity: 'low' },
      reasoning: { effort: 'minimal', summary: 'auto' },
      max_output_tokens: 100, temperature: 1, top_p: 1, metadata: { k: 'v' },
      include: ['reasoning.encrypted_content'], truncation: 'auto', service_tier: 'flex', prompt_cache_key: 'k', a_field_of_tomorrow: { x: 1 },
    };
    expect(check.parse(body)).toBe(body);
    expect(check.check({ model: 'm', input: 'just text' })).toBe(true);
    expect(check.check({ model: 'm', previous_response_id: 'resp_1' })).toBe(true);
  });

  it('an unknown input item type is a 400 naming its path and the known types', () => {
    const { param, message } = rejection({ model: 'm', input: [{ role: 'user', content: 'x' }, { type: 'telepathy' }] });
    expect(param).toBe('input[1].type');
    expect(message).toMatch(/^input\[1\]\.type: expected one of 'message', 'function_call', 'function_call_output', 'reasoning', 'item_reference', .+, got 'telepathy'$/);
  });

  it('an unknown content part type, a message without content, a function call without call_id', () => {
    expect(rejection({ model: 'm', input: [{ role: 'user', content: [{ type: 'input_video', url: 'x' }] }] }).param).toBe('input[0].content[0].type');
    expect(rejection({ model: 'm', input: [{ type: 'message', role: 'user' }] }).param).toBe('input[0].content');
    expect(rejection({ model: 'm', input: [{ type: 'function_call', name: 'f', arguments: '{}' }] }).param).toBe('input[0].call_id');
    expect(rejection({ model: 'm', input: [{ type: 'function_call_output', call_id: 'c', output: 5 }] }).param).toBe('input[0].output');
    expect(rejection({ model: 'm', input: [{ role: 'tool', content: 'x' }] }).param).toBe('input[0].role');
  });

  it('wrong types and values', () => {
    expect(rejection({ input: 'x' })).toMatchObject({ param: 'model' });
    expect(rejection({ model: 'm', input: 42 })).toEqual({ param: 'input', message: 'input: expected a string or an array, got number 42' });
    expect(rejection({ model: 'm', input: 'x', temperature: 'hot' }).param).toBe('temperature');
    expect(rejection({ model: 'm', input: 'x', temperature: 3 }).param).toBe('temperature');
    expect(rejection({ model: 'm', input: 'x', max_output_tokens: 0 }).param).toBe('max_output_tokens');
    expect(rejection({ model: 'm', input: 'x', stream: 'yes' }).param).toBe('stream');
    expect(rejection({ model: 'm', input: 'x', metadata: { k: 1 } }).param).toBe('metadata.k');
    expect(rejection({ model: 'm', input: 'x', tools: [{ type: 'function' }] }).param).toBe('tools[0].name');
    expect(rejection({ model: 'm', input: 'x', tools: [{ type: 'hyperdrive' }] }).param).toBe('tools[0].type');
    expect(rejection({ model: 'm', input: 'x', tool_choice: 'sometimes' }).param).toBe('tool_choice');
    expect(rejection({ model: 'm', input: 'x', text: { format: { type: 'json_schema', schema: {} } } }).param).toBe('text.format.name');
  });
});
