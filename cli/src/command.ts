import { existsSync } from 'node:fs';
import type { ParseArgsOptionsConfig } from 'node:util';
import type { NatsConnection } from '@nats-io/transport-node';
import { inboxPrefixFor, readNatsSecrets, type NatsUser } from '@homelab/bus/credentials';
import { REPO_ROOT, demoHome, labHome, natsUrlFromEnv } from './home.ts';

/**
 * Exit codes of every `homelab` command, one meaning each (documented in `homelab --help` and the README):
 * 0 all is well; 1 the lab answered and reports a problem (something down, a request refused);
 * 2 the lab cannot be reached (NATS down, or nothing answers the subject); 64 the command line is wrong.
 * `start` and `demo` add 78: a service the lab needs cannot start (a port in use, an invalid config).
 */
export const Exit = { ok: 0, problem: 1, unreachable: 2, usage: 64, cannotStart: 78 } as const;

export interface Io {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

export interface CommandInput extends Io {
  /** The arguments after the command name, as given (commands that take subcommands parse them). */
  args: string[];
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * One `homelab` subcommand. main.ts keeps a table of them: adding a command is a file exporting
 * one of these and a line in that table.
 */
export interface Command {
  name: string;
  /** One line in `homelab --help`. */
  summary: string;
  /** The full `homelab NAME --help`. */
  usage: string;
  /** Options for node:util parseArgs (strict); `--help`/`-h` is added for every command. */
  options: ParseArgsOptionsConfig;
  /** Whether the command takes positional arguments (a prompt, a section, a subcommand). */
  positionals?: boolean;
  run(input: CommandInput): Promise<number>;
}

/** The lab did not answer: no NATS, or no service on the subject. Exit 2. */
export class UnreachableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UnreachableError';
  }
}

/** Whether a failed request means nobody answered (no service, or it timed out), rather than an answer. */
export function isNoAnswer(err: unknown): boolean {
  const e = err as Error & { code?: string; cause?: Error };
  const text = `${e.name} ${e.message} ${e.code ?? ''} ${e.cause?.message ?? ''} ${e.cause?.name ?? ''}`;
  return /no responders|503|timeout|TimeoutError|NoRespondersError/i.test(text);
}

/**
 * Where a `homelab` identity's password may be, in order: the file the environment names
 * (NATS_PASSWORDS_FILE), else the lab's (HOMELAB_SECRETS_DIR or .secrets) and the demo's that exist.
 */
export function passwordFilesFor(env: NodeJS.ProcessEnv): string[] {
  if (env['NATS_PASSWORDS_FILE']) return [env['NATS_PASSWORDS_FILE']];
  return [labHome(env).passwordsFile, demoHome(env).passwordsFile].filter((f) => existsSync(f));
}

interface Attempt { user?: string; pass?: string; from: string }

/**
 * The credentials to try for an identity, in order. From the environment when it sets them
 * (NATS_PASSWORD, with NATS_USER or else the identity's own name); else the identity's password
 * from each passwords file (the lab's, the demo's: whichever NATS is running accepts it). `scripts`
 * ends with no credentials at all, for a NATS without auth (an external one).
 */
export function credentialAttempts(env: NodeJS.ProcessEnv, identity: 'scripts' | 'admin'): Attempt[] {
  const envUser = env['NATS_USER'] || undefined;
  if (env['NATS_PASSWORD']) return [{ user: envUser ?? identity, pass: env['NATS_PASSWORD'], from: 'NATS_PASSWORD' }];
  if (identity === 'scripts' && envUser) return [{ user: envUser, from: 'NATS_USER' }];
  const attempts: Attempt[] = [];
  for (const file of passwordFilesFor(env)) {
    try {
      attempts.push({ user: identity, pass: readNatsSecrets(file)[identity], from: file });
    } catch { /* unreadable or incomplete: try the next */ }
  }
  if (identity === 'scripts') attempts.push({ from: 'no credentials' });
  return attempts;
}

/**
 * Connects as the command's NATS identity, with the same settings `npm start` uses (`NATS_URL`, else
 * `NATS_HOST`/`NATS_PORT`), trying the credentials of credentialAttempts in turn until the server
 * accepts one. Throws UnreachableError with a message that says what to check.
 */
export async function connectToLab(env: NodeJS.ProcessEnv, identity: 'scripts' | 'admin'): Promise<NatsConnection> {
  const servers = natsUrlFromEnv(env).split(',');
  const attempts = credentialAttempts(env, identity);
  if (attempts.length === 0) {
    throw new UnreachableError(`no password for the NATS user '${identity}': none in ${[labHome(env).passwordsFile, demoHome(env).passwordsFile].join(' or ')}; run \`homelab setup\`, or set NATS_PASSWORD`);
  }
  let refused: Error | undefined;
  // Loaded here, not with this module: `homelab start`, which runs as long as the lab, never connects.
  const { connect } = await import('@nats-io/transport-node');
  for (const a of attempts) {
    try {
      return await connect({ servers, ...(a.user && { user: a.user, pass: a.pass ?? '' }), inboxPrefix: inboxPrefixFor(a.user as NatsUser | undefined), timeout: 3000 });
    } catch (err) {
      if (/authorization/i.test(String((err as Error).message))) { refused = err as Error; continue; }
      throw new UnreachableError(`cannot reach the lab's NATS at ${servers.join(',')} (${(err as Error).message}). Is the lab running (npm start, or npm run demo)? NATS_URL, or NATS_HOST and NATS_PORT, point elsewhere.`, { cause: err });
    }
  }
  const hint = identity === 'scripts' ? 'run `homelab setup` (the passwords in .secrets), or set NATS_USER and NATS_PASSWORD' : 'run `homelab setup`, or set NATS_PASSWORD';
  throw new UnreachableError(`NATS at ${servers.join(',')} refused the ${identity} identity (tried: ${attempts.map((a) => a.from).join(', ')}): ${refused?.message ?? 'authorization violation'}; ${hint}`, { cause: refused });
}

export { REPO_ROOT };
