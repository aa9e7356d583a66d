import { writeFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';

/*
 * Helpers of the media service's end-to-end tests (not used by the service): a lab config on
 * loopback, and a reader of the MEDIA stream.
 */

export interface TestService {
  name: string;
  kind: 'sonarr' | 'radarr' | 'prowlarr' | 'qbittorrent' | 'jellyfin' | 'immich';
  port: number;
  apiKey?: string;
  username?: string;
  password?: string;
}

/**
 * Writes a lab config whose only node is `media-node` on 127.0.0.1 (JSON is YAML): nothing in it
 * points outside the machine. `media` is merged over test defaults (fast intervals, port 0).
 */
export function writeMediaConfig(dir: string, options: { natsUrl: string; services: TestService[]; media?: Record<string, unknown> }): string {
  const services = Object.fromEntries(options.services.map((s) => [s.name, {
    kind: s.kind, port: s.port, ...(s.apiKey !== undefined && { apiKey: s.apiKey }), ...(s.username !== undefined && { username: s.username }), ...(s.password !== undefined && { password: s.password }),
  }]));
  const config = {
    lab: { name: 'media-test' },
    nats: { url: options.natsUrl },
    nodes: { 'media-node': { address: '127.0.0.1', services } },
    media: {
      paths: [dir],
      intervals: { sonarr: 200, radarr: 200, prowlarr: 200, qbittorrent: 200, jellyfin: 200, immich: 200, storage: 300 },
      timeoutMs: 1000,
      snapshotHeartbeatMs: 1000,
      webhooks: { host: '127.0.0.1', port: 0 },
      ...options.media,
    },
  };
  const file = join(dir, 'lab.yaml');
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

export interface StreamEvent {
  subject: string;
  seq: number;
  data: Record<string, unknown>;
}

/** Every message of the MEDIA stream from its start, as they arrive (an ordered consumer). */
export class MediaEvents {
  readonly events: StreamEvent[] = [];
  readonly #waiters = new Set<() => void>();
  #stop: (() => Promise<void>) | undefined;

  static async open(nc: NatsConnection): Promise<MediaEvents> {
    const log = new MediaEvents();
    const consumer = await jetstream(nc).consumers.get('MEDIA');
    const messages = await consumer.consume();
    const loop = (async () => {
      for await (const m of messages) {
        log.events.push({ subject: m.subject, seq: m.seq, data: m.json<Record<string, unknown>>() });
        for (const w of log.#waiters) w();
      }
    })();
    log.#stop = async () => { await messages.close(); await loop; };
    return log;
  }

  of(subject: string): StreamEvent[] {
    return this.events.filter((e) => e.subject === subject);
  }

  /** Waits until `predicate` holds for some event; returns it. */
  waitFor(predicate: (e: StreamEvent) => boolean, timeoutMs = 10_000, what = 'a matching event'): Promise<StreamEvent> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = this.events.find(predicate);
        if (hit) { this.#waiters.delete(check); clearTimeout(timer); resolve(hit); }
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`no ${what} within ${timeoutMs} ms; saw:\n${this.events.slice(-15).map((e) => `${e.subject} ${JSON.stringify(e.data).slice(0, 200)}`).join('\n')}`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  async close(): Promise<void> {
    await this.#stop?.();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------- real qBittorrent

// The launcher lives with the simulators (the demo runs the real one too).
export { bencode, findQbittorrent, makeTorrent, qbittorrentPasswordHash, startQbittorrent, type Qbittorrent } from '@homelab/simulators';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
