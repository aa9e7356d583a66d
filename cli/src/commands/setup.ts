import { existsSync } from 'node:fs';
import { readNatsSecrets, writeNatsSecrets } from '@homelab/bus';
import { Exit, type Command } from '../command.ts';
import { demoHome, labHome, natsUrlFromEnv } from '../home.ts';
import { LAB_NATS_CONTEXT, writeNatsContext } from '../nats-context.ts';

export const setup: Command = {
  name: 'setup',
  summary: 'generate the NATS passwords (.secrets/), their bcrypt hashes for the server, and the nats CLI context `homelab`',
  usage: `usage: homelab setup [--force] [--demo]

Writes a random NATS password for every service to .secrets/nats-passwords.conf (the services read
it) and their bcrypt hashes to .secrets/nats-hashes.conf (nats-server reads only that), both mode 600
and git-ignored. npm start does this on first use; run it to make them ahead, or --force new ones
(restart NATS and the services after). HOMELAB_SECRETS_DIR puts them elsewhere.
Then it writes the nats CLI's context \`homelab\` (~/.config/nats/context/homelab.json, or under
XDG_CONFIG_HOME; mode 600): the lab's NATS (NATS_URL, or NATS_HOST and NATS_PORT) as the \`scripts\`
user with its password, so \`nats --context homelab sub 'health.>'\` works. It selects that context
only when none is selected yet. The demo writes its own context (homelab-demo) when it starts.
  --force   replace existing passwords
  --demo    the demo's secrets (.demo/secrets, or HOMELAB_DEMO_DIR/secrets) instead of the lab's; no context
Exit code: 0 written or already there; 1 the passwords file is there but unreadable; 64 wrong command line.
`,
  options: { force: { type: 'boolean' }, demo: { type: 'boolean' } },
  async run({ values, out, err, env }) {
    const home = values['demo'] ? demoHome(env) : labHome(env);
    if (existsSync(home.passwordsFile) && !values['force']) {
      out.write(`${home.passwordsFile} exists; --force writes new passwords (restart NATS and the services after)\n`);
    } else {
      writeNatsSecrets(home.passwordsFile);
      out.write(`wrote NATS passwords for every service to ${home.passwordsFile}, and their bcrypt hashes for nats-server to ${home.hashesFile} (mode 600, git-ignored)\n`);
    }
    if (values['demo']) return Exit.ok;
    let password: string;
    try {
      password = readNatsSecrets(home.passwordsFile).scripts;
    } catch (e) {
      err.write(`homelab setup: no nats CLI context written: ${(e as Error).message}\n`);
      return Exit.problem;
    }
    const url = natsUrlFromEnv(env);
    const written = writeNatsContext(env, LAB_NATS_CONTEXT, { description: 'Homelab Gateway: the lab, as the scripts user (written by homelab setup)', url, user: 'scripts', password }, { select: 'if-none' });
    const selection = written.selected
      ? `selected it (no context was selected), so \`nats sub 'health.>'\` watches the lab`
      : written.otherSelected
        ? `left '${written.otherSelected}' selected: use \`nats --context ${LAB_NATS_CONTEXT} sub 'health.>'\``
        : 'it is the selected context';
    out.write(`wrote the nats CLI context '${LAB_NATS_CONTEXT}' to ${written.file} (mode 600): ${url} as user scripts; ${selection}\n`);
    return Exit.ok;
  },
};
