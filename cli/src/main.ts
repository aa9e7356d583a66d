#!/usr/bin/env node
// The `homelab` command: runs the stack (`start`, `demo`), sets it up (`setup`), and talks to
// the running lab over its NATS API like any script would (`chat`, `models`).
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { busCredentialsFromEnv, inboxPrefixFor, writeNatsSecrets, type NatsUser } from '@homelab/bus';
import { chatCommand, modelsCommand } from './commands/chat.ts';
import { imagesCommand } from './commands/images.ts';
import { keysCommand } from './commands/keys.ts';
import { mediaCommand } from './commands/media.ts';
import { statusCommand } from './commands/status.ts';
import { startDemoSimulators } from './demo.ts';
import { REPO_ROOT, SECRETS_FILE, StackStartError, startStack } from './stack.ts';

const USAGE = `homelab — control plane of the home lab

  homelab start                 NATS (embedded unless NATS_URL is set) and every service, supervised
  homelab demo                  the same on loopback, with simulators standing in for vLLM, Ollama, OpenAI, Anthropic
  homelab setup [--force]       generate the NATS passwords (.secrets/nats-passwords.conf)
  homelab chat -m MODEL PROMPT  stream an answer  [--system TEXT] [--local-only]
  homelab models                the models the lab can serve now
  homelab status                every node and service of the lab (exit 1 if anything is down)  [--help]
  homelab media                 downloads, streams, storage of the media node  [--help]
  homelab keys create|list|revoke   API keys of the HTTP edge (as the NATS user 'admin')
  homelab images generate|jobs|status|cancel   image jobs (generate PROMPT -o file.png)  [--help]

Environment: NATS_URL (default nats://127.0.0.1:4222), NATS_USER / NATS_PASSWORD, NATS_PORT, HOMELAB_CONFIG.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
    case 'demo':
      return runStack(command === 'demo');
    case 'setup': {
      const { values } = parseArgs({ args: rest, options: { force: { type: 'boolean' } } });
      const { existsSync } = await import('node:fs');
      if (existsSync(SECRETS_FILE) && !values.force) {
        process.stdout.write(`${SECRETS_FILE} exists; --force writes new passwords (restart NATS and the services after)\n`);
        return 0;
      }
      writeNatsSecrets(SECRETS_FILE);
      process.stdout.write(`wrote NATS passwords for every service to ${SECRETS_FILE} (mode 600, git-ignored)\n`);
      return 0;
    }
    case 'chat': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { model: { type: 'string', short: 'm' }, system: { type: 'string' }, 'local-only': { type: 'boolean' } } });
      if (!values.model || positionals.length === 0) { process.stderr.write('usage: homelab chat -m MODEL "prompt"\n'); return 2; }
      return withBus((nc) => chatCommand(nc, { model: values.model!, prompt: positionals.join(' '), ...(values.system && { system: values.system }), localOnly: values['local-only'] ?? false }, process.stdout, process.stderr));
    }
    case 'models':
      return withBus((nc) => modelsCommand(nc, process.stdout));
    case 'status':
      return withBus((nc) => statusCommand(nc, rest, process.stdout));
    case 'media':
      return withBus((nc) => mediaCommand(nc, rest, process.stdout));
    case 'images':
      return withBus((nc) => imagesCommand(nc, rest, process.stdout, process.stderr));
    case 'keys':
      return withBus((nc) => keysCommand(nc, rest, process.stdout, process.stderr), 'admin');
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

async function withBus(run: (nc: Awaited<ReturnType<typeof connect>>) => Promise<number>, asUser?: NatsUser): Promise<number> {
  // Key management needs the admin identity: its password comes from the generated secrets file unless given.
  const env = asUser ? { NATS_USER: asUser, NATS_PASSWORDS_FILE: SECRETS_FILE, ...process.env } : process.env;
  const creds = busCredentialsFromEnv(env);
  const servers = (process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222').split(',');
  let nc;
  try {
    nc = await connect({ servers, ...(creds.user && { user: creds.user, pass: creds.password }), inboxPrefix: inboxPrefixFor(creds.user), timeout: 3000 });
  } catch (err) {
    process.stderr.write(`cannot reach NATS at ${servers.join(',')}: ${(err as Error).message}\nIs the stack running (npm start)? Set NATS_URL to point elsewhere.\n`);
    return 1;
  }
  try {
    return await run(nc);
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await nc.close();
  }
}

async function runStack(demo: boolean): Promise<number> {
  const env = { ...process.env };
  let stopSims: (() => Promise<void>) | undefined;
  const serviceEnv: Record<string, string> = {};
  if (demo) {
    serviceEnv['HOMELAB_CONFIG'] = env['HOMELAB_CONFIG'] ?? join(REPO_ROOT, 'config', 'demo.yaml');
    // The demo runs on loopback only: no API keys needed (the ingress says so at start).
    serviceEnv['HOMELAB_AUTH'] = env['HOMELAB_AUTH'] ?? 'none';
    try {
      stopSims = await startDemoSimulators(process.stdout);
    } catch (err) {
      process.stderr.write(`demo: ${(err as Error).message}\n`);
      return 1;
    }
  }
  let stack: Awaited<ReturnType<typeof startStack>>;
  try {
    stack = await startStack({ env, out: process.stdout, serviceEnv });
  } catch (err) {
    await stopSims?.();
    if (err instanceof StackStartError) { process.stderr.write(`${err.message}\n`); return 1; }
    throw err;
  }
  if (demo) {
    const port = env['PORT'] ?? '8080';
    process.stdout.write(`\nDemo is starting. Try:\n  curl -s http://127.0.0.1:${port}/v1/chat/completions -H 'content-type: application/json' -d '{"model":"smart","messages":[{"role":"user","content":"hi"}],"stream":true}'\n  NATS_URL=${stack.natsUrl} node cli/src/main.ts chat -m fast "hello"\n\n`);
  }
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  process.stdout.write('stopping…\n');
  await stack.stop();
  await stopSims?.();
  return 0;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`homelab: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
