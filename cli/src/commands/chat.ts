import { GatewayError, H, ReplyMux, Subjects, createHeaders, errorFromReply, newRequestId, requestStream, type NatsConnection } from '@homelab/bus';
import { RecordSplitter, parseSseEvent } from '@homelab/dialects';
import { Exit, UnreachableError, connectToLab, isNoAnswer, type Command } from '../command.ts';

export interface ChatArgs { model: string; prompt: string; system?: string; localOnly?: boolean }

/** `homelab chat -m MODEL "prompt"`: streams the answer to `out` over the NATS API. Returns the exit code. */
export async function chatCommand(nc: NatsConnection, args: ChatArgs, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const mux = new ReplyMux(nc);
  const headers = createHeaders();
  headers.set(H.requestId, newRequestId());
  if (args.localOnly) headers.set(H.route, 'local-only');
  const messages = [...(args.system ? [{ role: 'system', content: args.system }] : []), { role: 'user', content: args.prompt }];
  const body = new TextEncoder().encode(JSON.stringify({ model: args.model, messages, stream: true }));
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once('SIGINT', onSigint);
  try {
    const events = new RecordSplitter('sse');
    for await (const msg of requestStream(nc, mux, Subjects.chatCompletions.subject, body, { headers, firstMessageTimeoutMs: 15_000, idleTimeoutMs: 15_000, signal: controller.signal })) {
      const error = errorFromReply(msg.headers, msg.data);
      if (error) { err.write(`\nerror: ${error.message} (${error.code})\n`); return Exit.problem; }
      // The answer's bytes are OpenAI's server-sent events, cut anywhere: whole events are written.
      const cut = events.push(msg.data);
      for (const [start, end] of cut?.records ?? []) out.write(contentOf(cut!.data.subarray(start, end)));
      if (msg.headers?.get(H.stream) === 'end') { out.write('\n'); return Exit.ok; }
    }
    return 0;
  } catch (e) {
    if (!(e instanceof GatewayError) && isNoAnswer(e)) {
      err.write(`error: the router did not answer (${(e as Error).message}): is the lab running?\n`);
      return Exit.unreachable;
    }
    err.write(`error: ${e instanceof GatewayError ? `${e.message} (${e.code})` : (e as Error).message}\n`);
    return Exit.problem;
  } finally {
    process.off('SIGINT', onSigint);
    mux.close();
  }
}

/** The text an OpenAI chat chunk adds to the answer (nothing for `[DONE]`, comments or usage). */
function contentOf(record: Buffer): string {
  const { data } = parseSseEvent(record);
  if (!data?.startsWith('{')) return '';
  const chunk = JSON.parse(data) as { choices?: { delta?: { content?: string | null } }[] };
  return chunk.choices?.[0]?.delta?.content ?? '';
}

/** `homelab models`: what the lab can serve now, as a table (or the list as JSON). */
export async function modelsCommand(nc: NatsConnection, out: NodeJS.WritableStream, options: { json?: boolean } = {}): Promise<number> {
  let reply;
  try {
    reply = await nc.request(Subjects.models.subject, undefined, { timeout: 5000 });
  } catch (err) {
    if (isNoAnswer(err)) throw new UnreachableError('the router did not answer inference.models: is the lab running (npm start, or npm run demo)?', { cause: err });
    throw err;
  }
  const error = errorFromReply(reply.headers, reply.data);
  if (error) throw error;
  const list = reply.json<{ data: { id: string; owned_by: string; loaded?: boolean; alias_of?: string[] }[] }>();
  if (options.json) { out.write(`${JSON.stringify(list, null, 2)}\n`); return Exit.ok; }
  const width = Math.max(5, ...list.data.map((m) => m.id.length));
  out.write(`${'MODEL'.padEnd(width)}  BACKEND    NOTE\n`);
  for (const m of list.data) {
    const note = m.alias_of ? `alias: ${m.alias_of.join(' > ')}` : m.loaded ? 'loaded' : '';
    out.write(`${m.id.padEnd(width)}  ${m.owned_by.padEnd(9)}  ${note}\n`);
  }
  return Exit.ok;
}

export const chat: Command = {
  name: 'chat',
  summary: 'stream an answer over the NATS API: homelab chat -m MODEL "prompt"',
  usage: `usage: homelab chat -m MODEL [--system TEXT] [--local-only] PROMPT…

Asks the lab's router (inference.chat.completions) as a script would, and streams the answer.
  -m, --model MODEL   a model or alias (homelab models lists them)
  --system TEXT       a system message first
  --local-only        never a cloud backend
Exit code: 0 answered; 1 the lab refused or failed (unknown model, backend error); 2 the lab cannot
be reached; 64 wrong command line.
`,
  options: { model: { type: 'string', short: 'm' }, system: { type: 'string' }, 'local-only': { type: 'boolean' } },
  positionals: true,
  async run({ values, positionals, out, err, env }) {
    const model = values['model'];
    if (typeof model !== 'string' || positionals.length === 0) {
      err.write(`homelab chat: ${typeof model !== 'string' ? 'a model is needed (-m MODEL)' : 'a prompt is needed'}\n\n${chat.usage}`);
      return Exit.usage;
    }
    const nc = await connectToLab(env, 'scripts');
    try {
      const system = values['system'];
      return await chatCommand(nc, { model, prompt: positionals.join(' '), ...(typeof system === 'string' && { system }), localOnly: values['local-only'] === true }, out, err);
    } finally {
      await nc.close();
    }
  },
};

export const models: Command = {
  name: 'models',
  summary: 'the models the lab can serve now  [--json]',
  usage: `usage: homelab models [--json]

The models the router can serve now (inference.models): discovered local models, configured cloud
models and aliases.
  --json   the list as OpenAI's GET /v1/models returns it
Exit code: 0 listed; 1 the router answered an error; 2 the lab cannot be reached; 64 wrong command line.
`,
  options: { json: { type: 'boolean' } },
  async run({ values, out, err, env }) {
    const nc = await connectToLab(env, 'scripts');
    try {
      return await modelsCommand(nc, out, { json: values['json'] === true });
    } catch (e) {
      if (e instanceof GatewayError) { err.write(`homelab models: ${e.message} (${e.code})\n`); return Exit.problem; }
      throw e;
    } finally {
      await nc.close();
    }
  },
};
