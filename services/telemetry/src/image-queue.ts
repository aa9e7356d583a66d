import { JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { imageJobSubject, type ImageBackend, type NatsConnection } from '@homelab/bus';
import type { Logger } from '@homelab/logging';

const BACKENDS: ImageBackend[] = ['comfyui', 'openai'];

/**
 * The image work queue's depth per backend: the jobs in the stream (waiting or held), and of those the
 * ones its worker consumer holds unacknowledged (running). Read from JetStream's stream and consumer
 * info, never by consuming: a work queue's messages belong to its workers.
 */
export async function imageQueueDepth(nc: NatsConnection): Promise<Map<ImageBackend, { queued: number; running: number }>> {
  const jsm = await jetstreamManager(nc);
  const out = new Map<ImageBackend, { queued: number; running: number }>();
  let subjects: Record<string, number> = {};
  try {
    subjects = ((await jsm.streams.info('IMAGE_JOBS', { subjects_filter: 'worker.*.images' })).state.subjects ?? {}) as Record<string, number>;
  } catch (err) {
    if (err instanceof JetStreamApiError && err.status === 404) return out; // no image jobs yet
    throw err;
  }
  for (const backend of BACKENDS) {
    const total = subjects[imageJobSubject(backend)] ?? 0;
    let running = 0;
    try {
      running = (await jsm.consumers.info('IMAGE_JOBS', `worker-${backend}-images`)).num_ack_pending;
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.status === 404)) throw err; // no worker ever started: nothing runs
    }
    out.set(backend, { queued: Math.max(0, total - running), running: Math.min(running, total) });
  }
  return out;
}

export function pollImageQueue(nc: NatsConnection, record: (backend: ImageBackend, queued: number, running: number) => void, log: Logger, intervalMs = 5000): { stop(): void } {
  let warned = false;
  const round = async (): Promise<void> => {
    for (const [backend, depth] of await imageQueueDepth(nc)) record(backend, depth.queued, depth.running);
    warned = false;
  };
  const tick = (): void => void round().catch((err: unknown) => {
    if (!warned) log.warn({ err: (err as Error).message }, 'image queue depth poll failed');
    warned = true;
  });
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
