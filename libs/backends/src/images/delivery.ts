import { AckPolicy, DeliverPolicy, type ConsumerConfig } from '@nats-io/jetstream';
import { imageJobSubject, type ImageBackend, type ImageJobRecord } from '@homelab/bus';

/* The decisions of a job's delivery to a worker, apart from the bus (jobs.ts acts on them). */

/**
 * One durable consumer per backend, shared by its replicas: `max_ack_pending` is the backend's
 * concurrency across all of them. Deliveries are not capped: JetStream would drop a job silently,
 * leaving its requester waiting; past `maxAttempts` the worker fails it, with an answer and an event.
 */
export function imageJobsConsumer(backend: ImageBackend, o: { ackWaitMs: number; concurrency: number }): Partial<ConsumerConfig> & { durable_name: string } {
  return {
    durable_name: `worker-${backend}-images`, filter_subject: imageJobSubject(backend), ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
    ack_wait: o.ackWaitMs * 1e6, max_ack_pending: o.concurrency, max_deliver: -1,
  };
}

/** Whether a cancel's body asks to cancel only a job that has not started (`{ "ifQueued": true }`). */
export function cancelsOnlyIfQueued(data: Uint8Array): boolean {
  if (data.length === 0) return false;
  try {
    return (JSON.parse(Buffer.from(data).toString('utf8')) as { ifQueued?: boolean } | null)?.ifQueued === true;
  } catch {
    return false; // an odd body: a plain cancel
  }
}

/** How often a running job tells the work queue it is alive: well within the ack wait, not more than twice a second. */
export function heartbeatMs(ackWaitMs: number): number {
  return Math.max(500, Math.floor(ackWaitMs / 3));
}

/** How a delivery may go on, by the job's record. */
export type Admission = 'start' | 'no-record' | 'ended' | 'cancel' | 'too-many-attempts';

export function admitJob(record: ImageJobRecord | undefined, attempt: number, maxAttempts: number): Admission {
  if (!record) return 'no-record';
  if (record.state === 'completed' || record.state === 'failed' || record.state === 'cancelled') return 'ended';
  if (record.cancelRequested) return 'cancel';
  if (attempt > maxAttempts) return 'too-many-attempts';
  return 'start';
}

/** The change that starts a job: only from queued or running (a takeover), and not when a cancel came first. */
export function startedRecord(attempt: number, now: Date): (r: ImageJobRecord) => ImageJobRecord | undefined {
  return (r) => (r.state === 'queued' || r.state === 'running') && !r.cancelRequested
    ? { ...r, state: 'running', attempts: attempt, startedAt: r.startedAt ?? now.toISOString() } : undefined;
}

/** From submission to the first start (a takeover keeps the first `startedAt`). */
export function queueWaitMs(record: ImageJobRecord): number {
  return Math.max(0, Date.parse(record.startedAt!) - Date.parse(record.submittedAt));
}
