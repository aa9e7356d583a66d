#!/usr/bin/env node
// Creates a stream from a JSON definition, or updates it to that definition (docs/deploy.md). For the
// hub's MEDIA, which sources the media node's own stream instead of capturing subjects:
//
//   NATS_URL=nats://127.0.0.1:4222 NATS_USER=telemetry NATS_PASSWORDS_FILE=.secrets/nats-passwords.conf \
//     node deploy/nats/apply-stream.mjs deploy/nats/streams/MEDIA.hub.json [--replicas 3]
//
// Run it on the hub side before telemetry first starts (telemetry would otherwise create a plain MEDIA
// that captures subjects); run it again at any time to turn such a stream into the sourced one: the
// events it holds stay. The telemetry user may manage MEDIA (nats.conf); `nats stream add --config`
// (natscli) does the same where that tool is installed. Exit 0 when the stream matches the file.
import { readFileSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
const replicasAt = args.indexOf('--replicas');
if (!file) {
  console.error('usage: node deploy/nats/apply-stream.mjs <stream.json> [--replicas N]');
  process.exit(2);
}
const config = JSON.parse(readFileSync(file, 'utf8'));
if (replicasAt >= 0) config.num_replicas = Number(args[replicasAt + 1]);

const user = process.env.NATS_USER;
let pass = process.env.NATS_PASSWORD;
if (user && pass === undefined && process.env.NATS_PASSWORDS_FILE) {
  const variable = `HOMELAB_NATS_PASS_${user.toUpperCase().replace(/-/g, '_')}`;
  pass = new RegExp(`^${variable}:\\s*"([^"]*)"`, 'm').exec(readFileSync(process.env.NATS_PASSWORDS_FILE, 'utf8'))?.[1];
}
// Each service may read replies only on its own inbox prefix (nats.conf).
const inboxPrefix = !user || user === 'scripts' ? '_INBOX' : `_INBOX_${user}`;
const nc = await connect({ servers: (process.env.NATS_URL ?? 'nats://127.0.0.1:4222').split(','), user, pass, inboxPrefix });
try {
  const jsm = await jetstreamManager(nc);
  let existing;
  try {
    existing = await jsm.streams.info(config.name);
  } catch (err) {
    if (!/not found/i.test(err.message)) throw err;
  }
  if (existing) {
    await jsm.streams.update(config.name, { ...existing.config, ...config });
    console.log(`updated stream ${config.name} (${existing.state.messages} messages kept)`);
  } else {
    await jsm.streams.add(config);
    console.log(`created stream ${config.name}`);
  }
} catch (err) {
  console.error(`apply-stream: ${config.name}: ${err.message}`);
  process.exitCode = 1;
} finally {
  await nc.close();
}
