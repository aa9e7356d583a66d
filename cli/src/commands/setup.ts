import { existsSync } from 'node:fs';
import { writeNatsSecrets } from '@homelab/bus';
import { Exit, type Command } from '../command.ts';
import { demoHome, labHome } from '../home.ts';

export const setup: Command = {
  name: 'setup',
  summary: 'generate the NATS passwords (.secrets/nats-passwords.conf) and their bcrypt hashes for the server',
  usage: `usage: homelab setup [--force] [--demo]

Writes a random NATS password for every service to .secrets/nats-passwords.conf (the services read
it) and their bcrypt hashes to .secrets/nats-hashes.conf (nats-server reads only that), both mode 600
and git-ignored. npm start does this on first use; run it to make them ahead, or --force new ones
(restart NATS and the services after). HOMELAB_SECRETS_DIR puts them elsewhere.
  --force   replace existing passwords
  --demo    the demo's secrets (.demo/secrets, or HOMELAB_DEMO_DIR/secrets) instead of the lab's
Exit code: 0 written or already there; 64 wrong command line.
`,
  options: { force: { type: 'boolean' }, demo: { type: 'boolean' } },
  async run({ values, out, env }) {
    const home = values['demo'] ? demoHome(env) : labHome(env);
    if (existsSync(home.passwordsFile) && !values['force']) {
      out.write(`${home.passwordsFile} exists; --force writes new passwords (restart NATS and the services after)\n`);
      return Exit.ok;
    }
    writeNatsSecrets(home.passwordsFile);
    out.write(`wrote NATS passwords for every service to ${home.passwordsFile}, and their bcrypt hashes for nats-server to ${home.hashesFile} (mode 600, git-ignored)\n`);
    return Exit.ok;
  },
};
