import { parseArgs } from 'node:util';
import { Exit, connectToLab, type Command } from '../command.ts';
import {
  HealthSnapshotSchema, Subjects, errorFromReply, validator, type HealthSnapshot, type HealthState, type HealthTargetStatus, type NatsConnection,
} from '@homelab/bus';

export const STATUS_USAGE = `usage: homelab status [--node NODE] [--down] [--strict] [--json] [--timeout MS]

The lab's health from the health service (health.status): every node and service, its state,
latency, since when, and why it is not up.
  --node NODE   only this node's targets
  --down        only targets that are down or degraded
  --strict      degraded counts as a failure for the exit code
  --json        the snapshot as JSON (what GET /status returns)
Exit code: 0 nothing is down; 1 something is down (or degraded with --strict); 2 the lab cannot
be reached (NATS, or the health service does not answer); 64 wrong command line.
`;

const STATUS_OPTIONS = {
  node: { type: 'string' }, down: { type: 'boolean' }, strict: { type: 'boolean' }, json: { type: 'boolean' }, timeout: { type: 'string' }, help: { type: 'boolean', short: 'h' },
} as const;

export const status: Command = {
  name: 'status',
  summary: 'every node and service of the lab, up or why not  [--json] [--node NODE] [--down]',
  usage: STATUS_USAGE,
  options: STATUS_OPTIONS,
  async run({ args, out, env }) {
    const nc = await connectToLab(env, 'scripts');
    try {
      return await statusCommand(nc, args, out);
    } finally {
      await nc.close();
    }
  },
};

const checkSnapshot = validator(HealthSnapshotSchema);

/** `homelab status`: the health snapshot as a table. Returns the exit code (non-zero when anything is down). */
export async function statusCommand(nc: NatsConnection, args: string[], out: NodeJS.WritableStream): Promise<number> {
  let values: { node?: string; down?: boolean; strict?: boolean; json?: boolean; timeout?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args, allowPositionals: false, options: STATUS_OPTIONS }));
  } catch (err) {
    out.write(`${(err as Error).message}\n\n${STATUS_USAGE}`);
    return Exit.usage;
  }
  if (values.help) { out.write(STATUS_USAGE); return 0; }
  const timeout = Number(values.timeout ?? 5000);
  const filter = values.node ? { node: values.node } : undefined;

  let snapshot: HealthSnapshot;
  try {
    const reply = await nc.request(Subjects.healthStatus.subject, filter ? new TextEncoder().encode(JSON.stringify(filter)) : undefined, { timeout: Number.isFinite(timeout) && timeout > 0 ? timeout : 5000 });
    const error = errorFromReply(reply.headers, reply.data);
    if (error) { out.write(`health service error: ${error.message}\n`); return 2; }
    const body: unknown = JSON.parse(reply.string());
    if (!checkSnapshot.check(body)) { out.write('health service answered something that is not a status snapshot\n'); return 2; }
    snapshot = body;
  } catch (err) {
    const e = err as Error & { code?: string };
    const why = /no responders|503/i.test(`${e.message} ${e.code ?? ''} ${(e.cause as Error | undefined)?.message ?? ''}`)
      ? 'the health service is not running (nothing answers health.status)'
      : /timeout/i.test(`${e.message} ${e.name}`) ? `the health service did not answer within ${timeout} ms` : e.message;
    out.write(`cannot get the lab's status: ${why}\n`);
    return 2;
  }

  if (values.down) snapshot = { ...snapshot, targets: snapshot.targets.filter((t) => t.state === 'down' || t.state === 'degraded') };
  out.write(values.json ? `${JSON.stringify(snapshot, null, 2)}\n` : formatStatus(snapshot));
  return statusExitCode(snapshot, values.strict ?? false);
}

/** 1 when a target is down (or degraded, when strict), else 0. */
export function statusExitCode(snapshot: Pick<HealthSnapshot, 'targets'>, strict = false): number {
  return snapshot.targets.some((t) => t.state === 'down' || (strict && t.state === 'degraded')) ? 1 : 0;
}

const MARK: Record<HealthState, string> = { up: 'up', degraded: 'DEGRADED', down: 'DOWN', unknown: '-' };

/** The snapshot as a plain-text table (no colours: it is read in terminals, logs and CI). */
export function formatStatus(snapshot: HealthSnapshot): string {
  const now = Date.parse(snapshot.generatedAt) || Date.now();
  const c = snapshot.counts;
  const lines: string[] = [];
  lines.push(`${snapshot.lab}: ${snapshot.overall === 'down' ? 'DOWN' : snapshot.overall} — ${c.up} up, ${c.degraded} degraded, ${c.down} down, ${c.unknown} not probed/unknown`);
  if (snapshot.targets.length === 0) {
    lines.push('(no targets)');
    return `${lines.join('\n')}\n`;
  }
  const rows = snapshot.targets.map((t) => [t.node, t.service, MARK[t.state], latency(t), age(t.since, now), note(t)]);
  const header = ['NODE', 'SERVICE', 'STATE', 'LATENCY', 'FOR', 'DETAIL'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]): string => r.map((cell, i) => (i === 3 ? cell.padStart(widths[i]!) : i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  lines.push(fmt(header), ...rows.map(fmt));
  return `${lines.join('\n')}\n`;
}

function latency(t: HealthTargetStatus): string {
  if (t.latencyMs === null) return '-';
  return t.latencyMs >= 1000 ? `${(t.latencyMs / 1000).toFixed(1)} s` : `${Math.round(t.latencyMs)} ms`;
}

/** What to read next to the state: why it is not up, or what was probed (and its version). */
function note(t: HealthTargetStatus): string {
  let text: string;
  if (!t.probed) text = `not probed: ${t.reason ?? 'no probe'}`;
  else if (t.state === 'unknown') text = `waiting for the first probe (${t.target ?? t.probe})`;
  else if (t.error) text = t.error;
  else {
    const version = t.detail?.['version'];
    const loaded = t.detail?.['loaded'];
    text = [t.target ?? t.probe, version !== undefined && `v${String(version).replace(/^v/, '')}`, loaded !== undefined && `loaded: ${loaded}`].filter(Boolean).join('  ');
  }
  return text.length > 72 ? `${text.slice(0, 71)}…` : text;
}

function age(since: string, now: number): string {
  const ms = now - Date.parse(since);
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}
