import { parseArgs } from 'node:util';
import { Subjects, errorFromReply, type NatsConnection } from '@homelab/bus';

export const KEYS_USAGE = `usage: homelab keys create NAME [--local-only] [--models M1,M2] [--backends B1,B2] [--rate N] [--daily TOKENS] [--monthly TOKENS]
       homelab keys list [--json]
       homelab keys revoke NAME
Runs as the NATS user 'admin' (password from NATS_PASSWORD, NATS_PASSWORDS_FILE or .secrets/nats-passwords.conf).`;

/** `homelab keys …` over the bus. The key is printed once, on stdout; nothing else goes there for `create`. */
export async function keysCommand(nc: NatsConnection, args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const [verb, ...rest] = args;
  const request = async (subject: string, body: unknown): Promise<unknown> => {
    const reply = await nc.request(subject, body === undefined ? undefined : JSON.stringify(body), { timeout: 5000 });
    const error = errorFromReply(reply.headers, reply.data);
    if (error) throw error;
    return reply.json();
  };
  try {
    if (verb === 'create') {
      const { values, positionals } = parseArgs({
        args: rest, allowPositionals: true,
        options: { 'local-only': { type: 'boolean' }, models: { type: 'string' }, backends: { type: 'string' }, rate: { type: 'string' }, daily: { type: 'string' }, monthly: { type: 'string' } },
      });
      const name = positionals[0];
      if (!name) { err.write(`${KEYS_USAGE}\n`); return 2; }
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
      return 0;
    }
    if (verb === 'list') {
      const { keys } = await request(Subjects.keysList.subject, undefined) as { keys: { name: string; createdAt: string; revokedAt?: string; localOnly?: boolean; models?: string[]; backends?: string[]; rateLimitPerMinute?: number; dailyTokens?: number; monthlyTokens?: number; usage: { today: { cloudTokens: number; requests: number }; month: { cloudTokens: number } } }[] };
      if (rest.includes('--json')) { out.write(`${JSON.stringify(keys, null, 2)}\n`); return 0; }
      const width = Math.max(4, ...keys.map((k) => k.name.length));
      out.write(`${'NAME'.padEnd(width)}  STATE    ${'SCOPE'.padEnd(40)}  CLOUD TOKENS TODAY / MONTH   BUDGET DAY / MONTH\n`);
      for (const k of keys) {
        const scope = [k.localOnly && 'local-only', k.models && `models ${k.models.join(',')}`, k.backends && `backends ${k.backends.join(',')}`, k.rateLimitPerMinute && `${k.rateLimitPerMinute}/min`].filter(Boolean).join('; ') || 'all';
        out.write(`${k.name.padEnd(width)}  ${(k.revokedAt ? 'revoked' : 'active').padEnd(7)}  ${scope.padEnd(40)}  ${`${k.usage.today.cloudTokens} / ${k.usage.month.cloudTokens}`.padEnd(27)}  ${k.dailyTokens ?? '-'} / ${k.monthlyTokens ?? '-'}\n`);
      }
      return 0;
    }
    if (verb === 'revoke' && rest[0]) {
      await request(Subjects.keysRevoke.subject, { name: rest[0] });
      err.write(`revoked key '${rest[0]}'\n`);
      return 0;
    }
    err.write(`${KEYS_USAGE}\n`);
    return 2;
  } catch (e) {
    err.write(`error: ${(e as Error).message}\n`);
    return 1;
  }
}
