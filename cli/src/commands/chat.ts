import { GatewayError, H, ReplyMux, Subjects, createHeaders, errorFromReply, newRequestId, requestStream, type NatsConnection } from '@homelab/bus';

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
    for await (const msg of requestStream(nc, mux, Subjects.chatCompletions.subject, body, { headers, firstMessageTimeoutMs: 15_000, idleTimeoutMs: 15_000, signal: controller.signal })) {
      const error = errorFromReply(msg.headers, msg.data);
      if (error) { err.write(`\nerror: ${error.message} (${error.code})\n`); return 1; }
      const frame = msg.headers?.get(H.stream);
      if (frame === 'end') { out.write('\n'); return 0; }
      if (frame !== 'chunk' || msg.data.length === 0) continue;
      const chunk = msg.json<{ choices: { delta: { content?: string; reasoning_content?: string } }[] }>();
      const delta = chunk.choices[0]?.delta;
      if (delta?.content) out.write(delta.content);
    }
    return 0;
  } catch (e) {
    err.write(`error: ${e instanceof GatewayError ? `${e.message} (${e.code})` : (e as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
    mux.close();
  }
}

/** `homelab models`: what the lab can serve now, as a table. */
export async function modelsCommand(nc: NatsConnection, out: NodeJS.WritableStream): Promise<number> {
  const reply = await nc.request(Subjects.models.subject, undefined, { timeout: 5000 });
  const error = errorFromReply(reply.headers, reply.data);
  if (error) throw error;
  const list = reply.json<{ data: { id: string; owned_by: string; loaded?: boolean; alias_of?: string[] }[] }>();
  const width = Math.max(5, ...list.data.map((m) => m.id.length));
  out.write(`${'MODEL'.padEnd(width)}  BACKEND    NOTE\n`);
  for (const m of list.data) {
    const note = m.alias_of ? `alias: ${m.alias_of.join(' > ')}` : m.loaded ? 'loaded' : '';
    out.write(`${m.id.padEnd(width)}  ${m.owned_by.padEnd(9)}  ${note}\n`);
  }
  return 0;
}
