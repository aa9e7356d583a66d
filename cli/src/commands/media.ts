import { parseArgs } from 'node:util';
import { Exit, connectToLab, type Command } from '../command.ts';
import {
  MediaStatusSchema, Subjects, errorFromReply, validator, type MediaQueueItem, type MediaStatus, type MediaStream, type NatsConnection,
} from '@homelab/bus';

export const MEDIA_USAGE = `usage: homelab media [downloads|playing|storage|services] [--json] [--timeout MS]

What the media node is doing, from the media service (media.status):
  downloads   what is downloading: Sonarr/Radarr queues and qBittorrent's active torrents
  playing     what Jellyfin is streaming, to whom, and how (direct play or transcoding)
  storage     each media path: size, used, free, and whether it is low on space
  services    each polled service (Sonarr, Radarr, Prowlarr, qBittorrent, Jellyfin, Immich): ok or why not
  (none)      all of the above
  --json      the media.status reply as JSON
Exit code: 0 all well; 1 a service is failing or a path is low or missing; 2 the lab cannot be
reached (NATS, or the media service does not answer); 64 wrong command line.
Used share (USE%) is df's: used ÷ (used + available), as homelab_media_storage_used_ratio.
`;

const MEDIA_OPTIONS = { json: { type: 'boolean' }, timeout: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const;

export const media: Command = {
  name: 'media',
  summary: 'downloads, streams, storage and services of the media node  [--json]',
  usage: MEDIA_USAGE,
  options: MEDIA_OPTIONS,
  positionals: true,
  async run({ args, out, env }) {
    const nc = await connectToLab(env, 'scripts');
    try {
      return await mediaCommand(nc, args, out);
    } finally {
      await nc.close();
    }
  },
};

const SECTIONS = ['downloads', 'playing', 'storage', 'services'] as const;
type Section = (typeof SECTIONS)[number];
const checkStatus = validator(MediaStatusSchema);

/** `homelab media`: what is downloading, what is playing, storage per path. Returns the exit code. */
export async function mediaCommand(nc: NatsConnection, args: string[], out: NodeJS.WritableStream): Promise<number> {
  let values: { json?: boolean; timeout?: string; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args, allowPositionals: true, options: MEDIA_OPTIONS }));
  } catch (err) {
    out.write(`${(err as Error).message}\n\n${MEDIA_USAGE}`);
    return Exit.usage;
  }
  if (values.help || positionals[0] === 'help') { out.write(MEDIA_USAGE); return 0; }
  const section = positionals[0] as Section | undefined;
  if (positionals.length > 1 || (section !== undefined && !SECTIONS.includes(section))) {
    out.write(`unknown section '${positionals.join(' ')}'\n\n${MEDIA_USAGE}`);
    return Exit.usage;
  }
  const requested = Number(values.timeout ?? 5000);
  const timeout = Number.isFinite(requested) && requested > 0 ? requested : 5000;

  let status: MediaStatus;
  try {
    const reply = await nc.request(Subjects.mediaStatus.subject, undefined, { timeout });
    const error = errorFromReply(reply.headers, reply.data);
    if (error) { out.write(`media service error: ${error.message}\n`); return 2; }
    const body: unknown = JSON.parse(reply.string());
    if (!checkStatus.check(body)) { out.write('the media service answered something that is not a media status\n'); return 2; }
    status = body;
  } catch (err) {
    const e = err as Error & { code?: string };
    const text = `${e.message} ${e.code ?? ''} ${(e.cause as Error | undefined)?.message ?? ''}`;
    const why = /no responders|503/i.test(text) ? 'the media service is not running (nothing answers media.status)'
      : /timeout/i.test(`${text} ${e.name}`) ? `the media service did not answer within ${timeout} ms` : e.message;
    out.write(`cannot get the media node's status: ${why}\n`);
    return 2;
  }

  out.write(values.json ? `${JSON.stringify(status, null, 2)}\n` : formatMedia(status, section));
  return mediaExitCode(status);
}

/** 1 when a polled service fails or a media path is low or unreadable, else 0. */
export function mediaExitCode(status: MediaStatus): number {
  const failing = status.targets.some((t) => t.error !== undefined);
  const storage = status.storage?.paths.some((p) => p.low || !p.ok) ?? false;
  return failing || storage ? 1 : 0;
}

/** The status as plain-text tables, one section or all. */
export function formatMedia(status: MediaStatus, section?: Section): string {
  const now = Date.parse(status.at) || Date.now();
  const parts: string[] = [];
  if (!section || section === 'downloads') parts.push(downloads(status));
  if (!section || section === 'playing') parts.push(playing(status));
  if (!section || section === 'storage') parts.push(storage(status));
  if (!section || section === 'services') parts.push(services(status, now));
  return `${parts.join('\n')}`;
}

function table(header: string[], rows: string[][], right: number[] = []): string[] {
  if (rows.length === 0) return [];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]): string => `  ${r.map((cell, i) => (right.includes(i) ? cell.padStart(widths[i]!) : i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')}`.trimEnd();
  return [fmt(header), ...rows.map(fmt)];
}

const clip = (text: string, max = 60): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
const percent = (p: number): string => `${(p * 100).toFixed(1)}%`;

/** Binary units, one decimal: what `df -h` shows. */
export function bytes(n: number | undefined): string {
  if (n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function eta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds >= 8_640_000) return '-';
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  return h > 0 ? `${h}h ${String(m).padStart(2, '0')}m` : `${m}m ${String(s).padStart(2, '0')}s`;
}

function queueState(item: MediaQueueItem): string {
  if (item.phase === 'failed') return `FAILED${item.errorMessage ? `: ${clip(item.errorMessage, 40)}` : ''}`;
  if (item.phase === 'completed') return item.trackedDownloadState === 'importBlocked' ? 'import blocked' : 'importing';
  if (item.phase === 'waiting') return item.status;
  return item.trackedDownloadStatus === 'warning' ? 'downloading (warning)' : item.status;
}

function downloads(status: MediaStatus): string {
  const rows: string[][] = [];
  const inQueues = new Set<string>();
  for (const q of status.queue) {
    for (const item of q.items) {
      if (item.downloadId) inQueues.add(item.downloadId);
      rows.push([q.source, clip(item.title), percent(item.progress), queueState(item), item.timeLeft ?? '-']);
    }
  }
  for (const t of status.transfer) {
    for (const torrent of t.torrents) {
      if (torrent.phase !== 'downloading' || inQueues.has(torrent.hash)) continue;
      rows.push([t.source, clip(torrent.name), percent(torrent.progress), torrent.state, eta(torrent.eta)]);
    }
  }
  const lines = [`Downloading (${rows.length})`];
  for (const t of status.transfer) {
    lines.push(`  ${t.source}: ↓ ${bytes(t.dlSpeed)}/s  ↑ ${bytes(t.upSpeed)}/s  ${t.counts.downloading} downloading, ${t.counts.seeding} seeding, ${t.counts.total} torrents  (${t.connectionStatus})`);
  }
  lines.push(...table(['SOURCE', 'TITLE', 'DONE', 'STATE', 'LEFT'], rows, [2]));
  if (rows.length === 0) lines.push('  nothing');
  return `${lines.join('\n')}\n`;
}

function ticks(t: number | undefined): string {
  if (t === undefined) return '-';
  const seconds = Math.floor(t / 10_000_000);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h > 0 ? `${h}:${String(m).padStart(2, '0')}` : m}:${String(s).padStart(2, '0')}`;
}

function title(s: MediaStream): string {
  const i = s.item;
  if (i.seriesName) {
    const ep = i.seasonNumber !== undefined && i.episodeNumber !== undefined ? ` S${String(i.seasonNumber).padStart(2, '0')}E${String(i.episodeNumber).padStart(2, '0')}` : '';
    return clip(`${i.seriesName}${ep} ${i.name}`, 50);
  }
  return clip(i.name, 50);
}

function method(s: MediaStream): string {
  if (s.playMethod !== 'Transcode') return s.playMethod ?? '-';
  const t = s.transcoding;
  const what = t ? [t.isVideoDirect === false && t.videoCodec && `video→${t.videoCodec}`, t.isAudioDirect === false && t.audioCodec && `audio→${t.audioCodec}`].filter(Boolean).join(', ') : '';
  return what ? `Transcode (${what})` : 'Transcode';
}

function playing(status: MediaStatus): string {
  const streams = status.sessions.flatMap((s) => s.streams.map((stream) => ({ source: s.source, stream })));
  const rows = streams.map(({ stream: s }) => [
    s.user ?? '-', clip(s.deviceName ?? s.deviceId, 24), title(s), method(s), `${ticks(s.positionTicks)} / ${ticks(s.item.runTimeTicks)}${s.isPaused ? ' (paused)' : ''}`,
  ]);
  const lines = [`Playing (${rows.length})`, ...table(['USER', 'DEVICE', 'TITLE', 'METHOD', 'POSITION'], rows)];
  if (rows.length === 0) lines.push('  nothing');
  return `${lines.join('\n')}\n`;
}

function storage(status: MediaStatus): string {
  const s = status.storage;
  if (!s) return 'Storage\n  not measured yet\n';
  const rows = s.paths.map((p) => (p.ok
    ? [p.path, bytes(p.totalBytes), bytes(p.usedBytes), bytes(p.freeBytes), `${Math.round(p.usedPercent ?? 0)}%`, p.low ? 'LOW' : '']
    : [p.path, '-', '-', '-', '-', (p.error ?? 'unreadable').toUpperCase()]));
  const limit = `low below ${s.thresholds.freePercent}% free${s.thresholds.freeBytes !== undefined ? ` or ${bytes(s.thresholds.freeBytes)}` : ''}`;
  const lines = [`Storage (${limit})`, ...table(['PATH', 'SIZE', 'USED', 'FREE', 'USE%', ''], rows, [1, 2, 3, 4])];
  if (rows.length === 0) lines.push('  no paths (media.paths)');
  return `${lines.join('\n')}\n`;
}

function ago(iso: string | undefined, now: number): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 90 ? `${s}s ago` : s < 5400 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

function services(status: MediaStatus, now: number): string {
  const rows = status.targets.map((t) => [
    t.name, t.kind, t.error ? t.error.reason.toUpperCase() : t.lastSuccessAt ? 'ok' : 'waiting',
    t.error ? `${clip(t.error.message, 80)} (since ${ago(t.error.since, now)})` : `polled ${ago(t.lastPollAt, now)}, every ${t.intervalMs / 1000} s`,
  ]);
  const lines = [`Services${status.webhooks.enabled ? ` (webhooks on port ${status.webhooks.port})` : ''}`, ...table(['NAME', 'KIND', 'STATE', 'DETAIL'], rows)];
  if (rows.length === 0) lines.push('  none configured');
  return `${lines.join('\n')}\n`;
}
