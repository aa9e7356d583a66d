import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAs, startTestStack, type TestStack } from '@homelab/testing';
import { waitFor } from './telemetry-kit.ts';

/*
 * Claude Code cannot run here (it needs the network to start), so this test sends what it sends,
 * as it sends it: the Anthropic SDK's beta Messages API (`/v1/messages?beta=true`), Claude Code's
 * beta headers, `x-app: cli` and its session header, system blocks with cache_control, tools,
 * `metadata.user_id`, adaptive thinking, `context_management`, `output_config.effort`, two
 * consecutive user turns (the deferred tools list, then reminders and the prompt), count_tokens
 * before a turn, and streaming. Shapes from Claude Code 2.1.x requests as captured by proxies (see
 * README, "Claude Code and the Anthropic SDK"). Through the stack to Claude, and to local models
 * through aliases, as ANTHROPIC_MODEL=smart and ANTHROPIC_SMALL_FAST_MODEL=fast would send them.
 */

let stack: TestStack;
let key: string;
/** Every request body as the SDK sent it, to compare with what reached Anthropic. */
const sent: string[] = [];
let claudeCode: Anthropic;

const BETAS = ['claude-code-20250219', 'interleaved-thinking-2025-05-14', 'context-management-2025-06-27', 'prompt-caching-scope-2026-01-05', 'effort-2025-11-24'];
const SESSION = 'b4e5aaaa-9a3e-47c4-84ad-3a70f38c676e';

beforeAll(async () => {
  stack = await startTestStack({
    auth: true, tokens: 8,
    inferenceYaml: '  aliases:\n    smart: [vllm/*, anthropic/claude-haiku-4-5]\n    fast: [ollama/llama3.2:3b]',
    extraYaml: 'routing:\n  policy: ordered',
  });
  await using nc = await connectAs(stack.nats, 'admin');
  key = (await nc.request('keys.create', JSON.stringify({ name: 'claude-code' }), { timeout: 5000 })).json<{ key: string }>().key;
  await waitFor(async () => (await fetch(`${stack.ingressUrl}/v1/models`, { headers: { authorization: `Bearer ${key}`, 'anthropic-version': '2023-06-01' } })).status === 200, 5000, 'the key');
  // ANTHROPIC_BASE_URL=<gateway origin> and ANTHROPIC_AUTH_TOKEN=<lab key>: the SDK adds /v1/… itself.
  claudeCode = new Anthropic({
    baseURL: stack.ingressUrl, apiKey: null, authToken: key, maxRetries: 0,
    // Claude Code's bundled SDK sends API version 2023-06-01 (this SDK would send its own, newer one).
    defaultHeaders: {
      'anthropic-version': '2023-06-01', 'x-app': 'cli', 'user-agent': 'claude-cli/2.1.69 (external, cli)', 'X-Claude-Code-Session-Id': SESSION,
      'anthropic-dangerous-direct-browser-access': 'true',
    },
    fetch: async (url, init) => {
      if (typeof init?.body === 'string') sent.push(init.body);
      return fetch(url, init);
    },
  });
}, 60_000);
afterAll(async () => { await stack?.[Symbol.asyncDispose](); });

const TOOLS: Anthropic.Beta.BetaTool[] = [
  {
    name: 'Bash', description: 'Executes a given bash command in a persistent shell session.',
    input_schema: { type: 'object', $schema: 'http://json-schema.org/draft-07/schema#', additionalProperties: false, required: ['command'], properties: { command: { type: 'string', description: 'The command to execute' }, timeout: { type: 'number' }, description: { type: 'string' } } },
  },
  {
    name: 'Read', description: 'Reads a file from the local filesystem.',
    input_schema: { type: 'object', additionalProperties: false, required: ['file_path'], properties: { file_path: { type: 'string' }, offset: { type: 'number' }, limit: { type: 'number' } } },
    cache_control: { type: 'ephemeral' },
  },
];

const SYSTEM: Anthropic.Beta.BetaTextBlockParam[] = [
  { type: 'text', text: 'x-anthropic-billing-header: cc_version=2.1.69; cc_entrypoint=cli;' },
  { type: 'text', text: 'You are Claude Code, Anthropic\'s official CLI for Claude.', cache_control: { type: 'ephemeral' } },
  { type: 'text', text: 'You are an interactive CLI tool that helps users with software engineering tasks.', cache_control: { type: 'ephemeral' } },
];

/** The first turn: the deferred tools list and the prompt with its reminders, two user turns in a row. */
const FIRST_TURN: Anthropic.Beta.BetaMessageParam[] = [
  { role: 'user', content: '<available-deferred-tools>\nWebFetch\nWebSearch\n</available-deferred-tools>' },
  {
    role: 'user', content: [
      { type: 'text', text: '<system-reminder>\nThe working directory is /home/me/lab.\n</system-reminder>' },
      { type: 'text', text: 'List the files here', cache_control: { type: 'ephemeral' } },
    ],
  },
];

function turn(model: string, messages: Anthropic.Beta.BetaMessageParam[]): Anthropic.Beta.MessageCreateParamsStreaming {
  return {
    model, messages, system: SYSTEM, tools: TOOLS, max_tokens: 32000, stream: true, betas: BETAS,
    metadata: { user_id: `user_0784b260bff170af_account_261d5434-c8c2-431f-b07d-2e480cd4622f_session_${SESSION}` },
    thinking: { type: 'adaptive' },
    context_management: { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] },
    output_config: { effort: 'medium' },
  };
}

/** One Claude Code turn: count the prompt first (to know when to compact), then stream the answer. */
async function claudeCodeTurn(model: string, messages: Anthropic.Beta.BetaMessageParam[]): Promise<{ count: number; answer: Anthropic.Beta.BetaMessage }> {
  const counted = await claudeCode.beta.messages.countTokens({ model, messages, system: SYSTEM, tools: TOOLS, betas: BETAS, thinking: { type: 'adaptive' } });
  const answer = await claudeCode.beta.messages.stream(turn(model, messages)).finalMessage();
  return { count: counted.input_tokens, answer };
}

/** The next turn after a tool call: the call, then its result with a reminder, as Claude Code sends them. */
function afterToolCall(messages: Anthropic.Beta.BetaMessageParam[], answer: Anthropic.Beta.BetaMessage): Anthropic.Beta.BetaMessageParam[] {
  const use = answer.content.find((b): b is Anthropic.Beta.BetaToolUseBlock => b.type === 'tool_use')!;
  return [
    ...messages,
    { role: 'assistant', content: answer.content as Anthropic.Beta.BetaContentBlockParam[] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'README.md\npackage.json' }, { type: 'text', text: '<system-reminder>\nKeep going.\n</system-reminder>' }] },
  ];
}

describe('Claude Code → Claude through the gateway', () => {
  it('every request reaches Anthropic byte for byte, beta headers and all; a tool turn and its result round-trip', async () => {
    const before = stack.sims.anthropic.requests.length;
    const first = await claudeCodeTurn('claude-haiku-4-5', FIRST_TURN);
    expect(first.count).toBeGreaterThan(0);
    expect(first.answer.content.map((b) => b.type)).toEqual(['thinking', 'tool_use']);
    expect(first.answer.stop_reason).toBe('tool_use');
    const second = await claudeCodeTurn('claude-haiku-4-5', afterToolCall(FIRST_TURN, first.answer));
    expect(second.answer.stop_reason).toBe('end_turn');

    const upstream = stack.sims.anthropic.requests.slice(before);
    expect(upstream.map((r) => r.path)).toEqual(['/v1/messages/count_tokens', '/v1/messages', '/v1/messages/count_tokens', '/v1/messages']);
    const bodies = sent.slice(-4);
    upstream.forEach((request, i) => {
      expect(request.raw.toString()).toBe(bodies[i]);
      expect(request.headers['anthropic-version']).toBe('2023-06-01');
      expect(request.headers['anthropic-beta']).toBe(i % 2 === 0 ? [...BETAS, 'token-counting-2024-11-01'].join(',') : BETAS.join(','));
    });
    // The system prompt's breakpoints: the second turn reads what the first wrote.
    expect(second.answer.usage.cache_read_input_tokens).toBeGreaterThan(0);
  });
});

describe('Claude Code → a local model through an alias (ANTHROPIC_MODEL=smart, ANTHROPIC_SMALL_FAST_MODEL=fast)', () => {
  it('the main model (smart → vLLM): counted by vLLM\'s tokenizer, streamed, a tool call and its result', async () => {
    const first = await claudeCodeTurn('smart', FIRST_TURN);
    const tokenize = stack.sims.vllm.requests.filter((r) => r.path === '/tokenize').at(-1)!;
    expect(tokenize.body).toMatchObject({ model: 'Qwen/Qwen2.5-7B-Instruct', tools: [{ type: 'function', function: { name: 'Bash' } }, { type: 'function', function: { name: 'Read' } }] });
    expect(first.count).toBeGreaterThan(0);
    expect(first.answer.model).toBe('smart');
    expect(first.answer.stop_reason).toBe('tool_use');
    const use = first.answer.content.find((b) => b.type === 'tool_use')!;
    expect(use).toMatchObject({ name: 'Bash', input: { command: expect.any(String) as string } });

    const chat = () => stack.sims.vllm.requests.filter((r) => r.path === '/v1/chat/completions').at(-1)!;
    const request = chat().body as { messages: { role: string; content: unknown; tool_call_id?: string }[] } & Record<string, unknown>;
    // What vLLM can use, in its terms; what only Anthropic has (cache breakpoints, context editing, betas) stays behind.
    expect(request).toMatchObject({
      model: 'Qwen/Qwen2.5-7B-Instruct', stream: true, stream_options: { include_usage: true }, max_completion_tokens: 32000, reasoning_effort: 'medium',
      user: expect.stringContaining(SESSION) as string, tools: [{ type: 'function', function: { name: 'Bash' } }, { type: 'function', function: { name: 'Read' } }],
    });
    expect(request.messages.map((m) => m.role)).toEqual(['system', 'user', 'user']);
    expect(request.messages[0]!.content).toContain('You are Claude Code');
    const serialized = JSON.stringify(request);
    for (const gone of ['cache_control', 'context_management', 'clear_thinking', 'output_config', 'adaptive']) expect(serialized).not.toContain(gone);

    const second = await claudeCodeTurn('smart', afterToolCall(FIRST_TURN, first.answer));
    expect(second.answer.content.length).toBeGreaterThan(0);
    const next = chat().body as { messages: { role: string; tool_call_id?: string; content: unknown }[] };
    expect(next.messages.map((m) => m.role)).toEqual(['system', 'user', 'user', 'assistant', 'tool', 'user']);
    expect(next.messages[4]).toMatchObject({ tool_call_id: use.id, content: 'README.md\npackage.json' });
  });

  it('the small fast model (fast → Ollama): a background request, streamed and whole', async () => {
    const quick = (stream: boolean) => ({
      model: 'fast', max_tokens: 512, betas: BETAS, system: [SYSTEM[0]!, { type: 'text' as const, text: 'Write a 5-10 word title for the conversation.' }],
      messages: [{ role: 'user' as const, content: 'List the files here' }], metadata: { user_id: `user_x_session_${SESSION}` }, stream,
    });
    const streamed = await claudeCode.beta.messages.stream(quick(true)).finalMessage();
    expect(streamed.content.map((b) => b.type)).toEqual(['text']);
    expect(streamed.stop_reason).toBe('end_turn');
    const whole = await claudeCode.beta.messages.create({ ...quick(false), stream: false });
    expect(whole.model).toBe('fast');
    const request = stack.sims.ollama.requests.filter((r) => r.path === '/api/chat').at(-1)!.body as Record<string, unknown>;
    expect(request).toMatchObject({ model: 'llama3.2:3b', stream: false, options: { num_predict: 512 } });
  });

  it('count_tokens for an Ollama model: the documented estimate, never an error', async () => {
    const counted = await claudeCode.beta.messages.countTokens({ model: 'fast', messages: FIRST_TURN, system: SYSTEM, tools: TOOLS, betas: BETAS });
    expect(counted.input_tokens).toBeGreaterThan(100);
  });

  it('model discovery (`GET /v1/models?beta=true` with anthropic-version) lists the lab\'s models in Anthropic\'s shape', async () => {
    const ids: string[] = [];
    for await (const model of claudeCode.beta.models.list()) ids.push(model.id);
    expect(ids).toEqual(expect.arrayContaining(['claude-haiku-4-5', 'smart', 'fast']));
  });
});
