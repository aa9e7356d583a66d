#!/usr/bin/env node
// The `homelab` command: runs the lab (`start`) or the demo (`demo`), sets it up (`setup`), and
// talks to the running lab over its NATS API like any script would (`chat`, `models`, `status`…).
import { parseArgs } from 'node:util';
import { Exit, UnreachableError, type Command, type Io } from './command.ts';

/**
 * Every subcommand, in the order `homelab --help` lists them, and the module that defines it. A
 * command's module is loaded only when it runs: `homelab start` supervises the lab for as long as the
 * lab runs, and holds only what it uses (no NATS client, no simulators). A new command: its file, and one line here.
 */
const COMMAND_MODULES = new Map<string, () => Promise<Command>>([
  ['start', async () => (await import('./commands/stack.ts')).start],
  ['demo', async () => (await import('./commands/stack.ts')).demo],
  ['setup', async () => (await import('./commands/setup.ts')).setup],
  ['chat', async () => (await import('./commands/chat.ts')).chat],
  ['models', async () => (await import('./commands/chat.ts')).models],
  ['status', async () => (await import('./commands/status.ts')).status],
  ['media', async () => (await import('./commands/media.ts')).media],
  ['images', async () => (await import('./commands/images.ts')).images],
  ['keys', async () => (await import('./commands/keys.ts')).keys],
]);

export const COMMAND_NAMES: readonly string[] = [...COMMAND_MODULES.keys()];

/** Every command, loaded (for `homelab --help`). */
function loadCommands(): Promise<Command[]> {
  return Promise.all([...COMMAND_MODULES.values()].map((load) => load()));
}

function usage(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return `homelab — control plane of the home lab

usage: homelab COMMAND [options]     (homelab COMMAND --help for its options)

${commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

NATS: NATS_URL, else NATS_HOST (127.0.0.1) and NATS_PORT (4222), as npm start uses them;
as scripts with its password from .secrets (the lab's, else the demo's), or NATS_USER / NATS_PASSWORD.
Exit codes: 0 all well; 1 the lab reports a problem (something down, a request refused);
2 the lab cannot be reached (NATS down, or no service answers); 64 wrong command line;
78 (start, demo) a service the lab needs cannot start: its message says what to do.
`;
}

/** Runs one command line; returns the exit code. Everything it prints goes to `io`. */
export async function runCli(argv: string[], io: Io): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) { io.err.write(usage(await loadCommands())); return Exit.usage; }
  if (name === '--help' || name === '-h' || name === 'help') { io.out.write(usage(await loadCommands())); return Exit.ok; }
  const command = await COMMAND_MODULES.get(name)?.();
  if (!command) {
    io.err.write(`homelab: unknown command '${name}'\n\n${usage(await loadCommands())}`);
    return Exit.usage;
  }
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: command.positionals ?? false, strict: true }) as typeof parsed;
  } catch (err) {
    // node:util's message without its error code: `Unknown option '--foo'`, `Option '-m, --model <value>' argument missing`.
    io.err.write(`homelab ${name}: ${(err as Error).message.replace(/\. To specify a positional argument.*$/s, '')}\n\n${command.usage}`);
    return Exit.usage;
  }
  if (parsed.values['help']) { io.out.write(command.usage); return Exit.ok; }
  try {
    return await command.run({ ...io, args, ...parsed });
  } catch (err) {
    if (err instanceof UnreachableError) { io.err.write(`homelab ${name}: ${err.message}\n`); return Exit.unreachable; }
    throw err;
  }
}

if (import.meta.main) {
  runCli(process.argv.slice(2), { out: process.stdout, err: process.stderr, env: process.env }).then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`homelab: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
