import { parseArgs } from 'node:util';
import { Subjects, errorFromReply, type NatsConnection } from '@homelab/bus';
import { Exit, UnreachableError, connectToLab, isNoAnswer, type Command } from '../command.ts';

export const KEYS_USAGE = `usage: homelab keys create NAME [--local-only] [--models M1,M2] [--backends B1,B2] [--rate N] [--daily TOKENS] [--monthly TOKENS]
       homelab keys list [--json]
       homelab keys revoke NAME

API keys of the HTTP edge, over the bus as the NATS user 'admin' (password from NATS_PASSWORD,
NATS_PASSWORDS_FILE, or the lab's .secrets/nats-passwords.conf, else the demo's). A key is printed
once, by create; list never shows one. With auth off (auth.mode: none, HOMELAB_AUTH=none) keys do
nothing: create and revoke refuse and say so, list says so.
Exit code: 0 done; 1 the lab refused (a name taken, keys off); 2 the lab cannot be reached; 64 wrong command line.
`;

const KEYS_OPTIONS = {
  'local-only': { type: 'boolean' }, models: { type: 'string' }, backends: { type: 'string' }, rate: { type: 'string' }, daily: { type: 'string' }, monthly: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export const keys: Command = {
  name: 'keys',
  summary: 'API keys of the HTTP edge: create NAME | list [--json] | revoke NAME',
  usage: KEYS_USAGE,
  options: KEYS_OPTIONS,
  positionals: true,
  async run({ args, positionals, out, err, env }) {
    const [verb, name, ...extra] = positionals;
    const usageError = (why: string): number => { err.write(`homelab keys: ${why}\n\n${KEYS_USAGE}`); return Exit.usage; };
    if (verb !== 'create' && verb !== 'list' && verb !== 'revoke') return usageError(verb ? `unknown subcommand '${verb}'` : 'create, list or revoke?');
    if (verb !== 'list' && !name) return usageError(`${verb} needs a key name`);
    if (extra.length > 0 || (verb === 'list' && name)) return usageError(`unexpected '${[...(verb === 'list' && name ? [name] : []), ...extra].join(' ')}'`);
    const nc = await connectToLab(env, 'admin');
    try {
      return await keysCommand(nc, args, out, err);
    } finally {
      await nc.close();
    }
  },
};

interface ListedKey {
  name: string; createdAt: string; revokedAt?: string; localOnly?: boolean; models?: string[]; backends?: string[]; rateLimitPerMinute?: number;
  dailyTokens?: number; monthlyTokens?: number; usage: { today: { cloudTokens: number; requests: number }; month: { cloudTokens: number } };
}

const KEYS_OFF = 'API keys are off in this lab (auth.mode: none, or HOMELAB_AUTH=none): the HTTP API takes requests without a key, and these keys do nothing';

/** `homelab keys …` over the bus. The key is printed once, on stdout; nothing else goes there for `create`. */
export async function keysCommand(nc: NatsConnection, args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: KEYS_OPTIONS });
  } catch (e) {
    err.write(`homelab keys: ${(e as Error).message}\n\n${KEYS_USAGE}`);
    return Exit.usage;
  }
  const { values, positionals } = parsed;
  const [verb, name] = positionals;
  const request = async (subject: string, body: unknown): Promise<unknown> => {
    let reply;
    try {
      reply = await nc.request(subject, body === undefined ? undefined : JSON.stringify(body), { timeout: 5000 });
    } catch (e) {
      if (isNoAnswer(e)) throw new UnreachableError(`the router did not answer ${subject}: is the lab running (npm start, or npm run demo)?`, { cause: e });
      throw e;
    }
    const error = errorFromReply(reply.headers, reply.data);
    if (error) throw error;
    return reply.json();
  };
  try {
    if (verb === 'create' && name) {
      const list = (v: string | undefined): string[] | undefined => v?.split(',').map((x) => x.trim()).filter(Boolean);
      const int = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number.parseInt(v, 10));
      const body = {
        name, ...(values['local-only'] && { localOnly: true }), ...(list(values.models) && { models: list(values.models) }),
        ...(list(values.backends) && { backends: list(values.backends) }), ...(int(values.rate) !== undefined && { rateLimitPerMinute: int(values.rate) }),
        ...(int(values.daily) !== undefined && { dailyTokens: int(values.daily) }), ...(int(values.monthly) !== undefined && { monthlyTokens: int(values.monthly) }),
      };
      const created = await request(Subjects.keysCreate.subject, body) as { key: string };
      out.write(`${created.key}\n`);
      err.write(`created key '${name}'; it is shown only now: store it where the client needs it\n`);
      return Exit.ok;
    }
    if (verb === 'list') {
      const { auth, keys: listed } = await request(Subjects.keysList.subject, undefined) as { auth?: 'keys' | 'none'; keys: ListedKey[] };
      if (auth === 'none') err.write(`note: ${KEYS_OFF}\n`);
      if (values.json) { out.write(`${JSON.stringify(listed, null, 2)}\n`); return Exit.ok; }
      const width = Math.max(4, ...listed.map((k) => k.name.length));
      out.write(`${'NAME'.padEnd(width)}  STATE    ${'SCOPE'.padEnd(40)}  CLOUD TOKENS TODAY / MONTH   BUDGET DAY / MONTH\n`);
      for (const k of listed) {
        const scope = [k.localOnly && 'local-only', k.models && `models ${k.models.join(',')}`, k.backends && `backends ${k.backends.join(',')}`, k.rateLimitPerMinute && `${k.rateLimitPerMinute}/min`].filter(Boolean).join('; ') || 'all';
        out.write(`${k.name.padEnd(width)}  ${(k.revokedAt ? 'revoked' : 'active').padEnd(7)}  ${scope.padEnd(40)}  ${`${k.usage.today.cloudTokens} / ${k.usage.month.cloudTokens}`.padEnd(27)}  ${k.dailyTokens ?? '-'} / ${k.monthlyTokens ?? '-'}\n`);
      }
      return Exit.ok;
    }
    if (verb === 'revoke' && name) {
      await request(Subjects.keysRevoke.subject, { name });
      err.write(`revoked key '${name}'\n`);
      return Exit.ok;
    }
    err.write(`${KEYS_USAGE}`);
    return Exit.usage;
  } catch (e) {
    if (e instanceof UnreachableError) throw e;
    err.write(`error: ${(e as Error).message}\n`);
    return Exit.problem;
  }
}
