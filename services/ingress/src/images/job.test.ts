import { describe, expect, it } from 'vitest';
import {
  GatewayError, H, ImageStreamFrame, createHeaders, errorHeaders, type ImageJobRecord, type ImagePartialFrame, type ImageSubmitReply, type MsgHeaders,
} from '@homelab/bus';
import { JobFollower, followImageJob, outcomeOfRecord, readJobMessage, type JobControls } from './job.ts';

const job: ImageSubmitReply = {
  id: 'imgjob_1', state: 'queued', model: 'sdxl', backend: 'comfyui', routeReason: 'model', stream: true, partialImages: 1,
  responseFormat: 'b64_json', outputFormat: 'png', created: 1_700_000_000, submittedAt: '2026-01-01T00:00:00Z',
};
const record = (extra: Partial<ImageJobRecord>): ImageJobRecord => ({
  id: 'imgjob_1', state: 'queued', kind: 'generate', backend: 'comfyui', model: 'sdxl', requestedModel: 'sdxl', routeReason: 'model', n: 1,
  requestId: 'req_1', submittedAt: '2026-01-01T00:00:00Z', attempts: 0, responseFormat: 'b64_json', outputFormat: 'png', ...extra,
});
const result = { id: 'imgjob_1', created: 1_700_000_100, model: 'sdxl', backend: 'comfyui', data: [{ file_id: 'img_x', content_type: 'image/png', bytes: 3 }] };
const partial: ImagePartialFrame = { index: 0, b64_json: 'AQID', output_format: 'png', width: 64, height: 64 };

function message(body: unknown, frame?: string, headers: MsgHeaders = createHeaders()): { headers: MsgHeaders; data: Uint8Array } {
  if (frame) headers.set(H.stream, frame);
  return { headers, data: Buffer.from(body === undefined ? '' : JSON.stringify(body)) };
}

/** The job calls, recorded; the records the status call answers, in turn. */
class RecordedControls implements JobControls {
  readonly calls: string[] = [];
  readonly #records: (ImageJobRecord | undefined)[];

  constructor(records: (ImageJobRecord | undefined)[] = []) {
    this.#records = records;
  }

  askStatus(id: string): Promise<ImageJobRecord | undefined> {
    this.calls.push(`status ${id}`);
    return Promise.resolve(this.#records.shift());
  }

  cancel(id: string, ifQueued: boolean): void {
    this.calls.push(`cancel ${id} ifQueued=${ifQueued}`);
  }
}

class RecordedProgress {
  readonly seen: string[] = [];
  keepalive(): void { this.seen.push('keepalive'); }
  partial(frame: ImagePartialFrame): void { this.seen.push(`partial ${frame.index}`); }
}

const options = { finishOnHangup: true, waitTimeoutMs: 900_000 };

describe('JobFollower', () => {
  it('hands the events out in order, waiting for the next when none is queued', async () => {
    const follower = new JobFollower();
    follower.push({ kind: 'silence' });
    follower.push({ kind: 'deadline' });
    expect(await follower.next()).toEqual({ kind: 'silence' });
    expect(await follower.next()).toEqual({ kind: 'deadline' });
    const waiting = follower.next();
    follower.push({ kind: 'hangup' });
    expect(await waiting).toEqual({ kind: 'hangup' });
  });
});

describe('a message on the job\'s inbox', () => {
  it('progress and keepalive frames are signs of life; a partial frame carries its image', () => {
    expect(readJobMessage(message({ step: 3, steps: 20 }, ImageStreamFrame.progress))).toEqual({ kind: 'keepalive' });
    expect(readJobMessage(message(undefined, ImageStreamFrame.keepalive))).toEqual({ kind: 'keepalive' });
    expect(readJobMessage(message(partial, ImageStreamFrame.partial))).toEqual({ kind: 'partial', partial });
  });

  it('a message without a frame is the end: the service error, or the result', () => {
    const refused = new GatewayError('invalid_request', 'the workflow has no node 9');
    const failed = readJobMessage(message(refused.toOpenAI(), undefined, errorHeaders(refused)));
    expect(failed.kind).toBe('error');
    expect(failed.kind === 'error' && failed.error.toOpenAI().error).toMatchObject({ code: 'invalid_request', message: 'the workflow has no node 9' });
    expect(readJobMessage(message(result))).toEqual({ kind: 'result', result });
  });
});

describe('a job\'s end, from its record', () => {
  it('completed: its result; failed or cancelled: its error; otherwise not yet', () => {
    const done = outcomeOfRecord(record({ state: 'completed', finishedAt: '2026-01-01T00:01:00Z', images: [{ id: 'img_x', contentType: 'image/png', bytes: 3 }] }));
    expect(done).toMatchObject({ kind: 'result', result: { id: 'imgjob_1', data: [{ file_id: 'img_x' }] } });
    const failed = outcomeOfRecord(record({ state: 'failed', error: { code: 'backend_error', message: 'ComfyUI went away', status: 502, reason: 'comfyui_unavailable' } }));
    expect(failed?.kind === 'error' && failed.error.toOpenAI().error).toMatchObject({ code: 'backend_error', message: 'ComfyUI went away' });
    expect(outcomeOfRecord(record({ state: 'cancelled' }))).toMatchObject({ kind: 'error', error: { code: 'cancelled' } });
    expect(outcomeOfRecord(record({ state: 'queued' }))).toBeUndefined();
    expect(outcomeOfRecord(record({ state: 'running' }))).toBeUndefined();
    expect(outcomeOfRecord(undefined)).toBeUndefined();
  });
});

describe('following a job', () => {
  it('passes progress and partial images on, and ends with the result', async () => {
    const follower = new JobFollower();
    const progress = new RecordedProgress();
    for (const msg of [message({ step: 1 }, ImageStreamFrame.progress), message(partial, ImageStreamFrame.partial), message(undefined, ImageStreamFrame.keepalive), message(result)]) {
      follower.push({ kind: 'message', msg });
    }
    const controls = new RecordedControls();
    expect(await followImageJob(job, follower, controls, options, progress)).toEqual({ kind: 'result', result });
    expect(progress.seen).toEqual(['keepalive', 'partial 0', 'keepalive']);
    expect(controls.calls).toEqual([]);
  });

  it('silence asks the job\'s record and waits on while it is queued; a completed record ends it', async () => {
    const follower = new JobFollower();
    const controls = new RecordedControls([undefined, record({ state: 'queued' }), record({ state: 'completed', images: [] })]);
    const progress = new RecordedProgress();
    follower.push({ kind: 'silence' });
    follower.push({ kind: 'disconnected' });
    follower.push({ kind: 'silence' });
    const outcome = await followImageJob(job, follower, controls, options, progress);
    expect(outcome).toMatchObject({ kind: 'result', result: { id: 'imgjob_1', data: [] } });
    expect(controls.calls).toEqual(['status imgjob_1', 'status imgjob_1', 'status imgjob_1']);
    expect(progress.seen).toEqual(['keepalive', 'keepalive', 'keepalive']);
  });

  it('a hang-up cancels the job (only if queued when running jobs finish on hang-up) and leaves nothing to answer', async () => {
    for (const finishOnHangup of [true, false]) {
      const follower = new JobFollower();
      const controls = new RecordedControls();
      follower.push({ kind: 'hangup' });
      expect(await followImageJob(job, follower, controls, { ...options, finishOnHangup })).toEqual({ kind: 'gone' });
      expect(controls.calls).toEqual([`cancel imgjob_1 ifQueued=${finishOnHangup}`]);
    }
  });

  it('the deadline cancels the job whatever its state and answers a 504 naming the setting', async () => {
    const follower = new JobFollower();
    const controls = new RecordedControls();
    follower.push({ kind: 'deadline' });
    const outcome = await followImageJob(job, follower, controls, { ...options, waitTimeoutMs: 5000 });
    expect(controls.calls).toEqual(['cancel imgjob_1 ifQueued=false']);
    expect(outcome.kind === 'error' && outcome.error.status).toBe(504);
    expect(outcome.kind === 'error' && outcome.error.message).toBe('the image job did not finish within 5000 ms (images.jobs.waitTimeoutMs); it was cancelled');
  });
});
