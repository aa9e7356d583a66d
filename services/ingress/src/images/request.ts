import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, type ImageFiles, type ImageSubmitReply } from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import type { RelayBus } from '../relay.ts';
import { buildImagesAnswer } from './answer.ts';
import { readEditForm } from './edit-form.ts';
import { asGatewayError, sendImageError } from './errors.ts';
import { JobFollower, followImageJob, openJobInbox, submitHeaders, submitImageJob, type JobControls } from './job.ts';
import { ImageEventWriter } from './sse.ts';

/*
 * One HTTP image request, answered by its job: submit, follow, answer (JSON, or OpenAI's SSE
 * events when the job streams). A client that hangs up cancels its job if it has not started; a
 * running one finishes into the object store (or is cancelled too: `images.jobs.finishOnHangup`).
 */

export interface ImageRequestDeps {
  config: LabConfig;
  log: Logger;
  bus: RelayBus;
  /** The object store `images`, opened on first use. */
  files: () => Promise<ImageFiles>;
  jobs: JobControls;
}

export type ImageOperation = 'generation' | 'edit';

/**
 * Submits a job and answers the HTTP request with its outcome. Resolves to whether the job was
 * accepted (its inputs are then its worker's to remove).
 */
export async function answerWithJob(
  deps: ImageRequestDeps, request: FastifyRequest, reply: FastifyReply, body: Buffer, operation: ImageOperation,
): Promise<boolean> {
  const { nc, mux } = deps.bus;
  if (!nc || !mux || !deps.bus.connected) {
    sendImageError(reply, new GatewayError('backend_unavailable', 'the gateway is not connected to its message bus yet; retry shortly'), request.id);
    return false;
  }
  const follower = new JobFollower();
  const inbox = openJobInbox(mux, follower, deps.config.gateway.silenceTimeoutMs);
  // Listening for a hang-up from the start: a client gone while its job is being submitted still cancels it.
  const hangup = (): void => { if (!reply.raw.writableFinished) follower.push({ kind: 'hangup' }); };
  reply.raw.once('close', hangup);
  const stopFollowing = (): void => {
    reply.raw.off('close', hangup);
    inbox.close();
  };

  let job: ImageSubmitReply;
  try {
    job = await submitImageJob(nc, mux, submitHeaders(request, inbox.subject), body);
  } catch (err) {
    stopFollowing();
    sendImageError(reply, asGatewayError(err, 'the image job could not be submitted'), request.id);
    return false;
  }

  setJobHeaders(reply, request.id, job);
  const deadline = setTimeout(() => follower.push({ kind: 'deadline' }), deps.config.images.jobs.waitTimeoutMs);
  try {
    await followAndAnswer(deps, request, reply, job, follower, operation);
  } finally {
    clearTimeout(deadline);
    stopFollowing();
  }
  return true;
}

/**
 * A multipart edit: its images go to the object store before the job is submitted. Inputs of a
 * job that was never accepted are of no use; an accepted job's worker removes them when it ends.
 */
export async function answerWithEditForm(deps: ImageRequestDeps, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const uploaded: string[] = [];
  let body: Buffer;
  try {
    const store = await deps.files();
    body = Buffer.from(JSON.stringify(await readEditForm(request.parts(), store, request.apiKey?.name, uploaded)));
  } catch (err) {
    await dropInputs(deps, uploaded);
    sendImageError(reply, asGatewayError(err, 'the edit request could not be read'), request.id);
    return;
  }
  const submitted = await answerWithJob(deps, request, reply, body, 'edit');
  if (!submitted) await dropInputs(deps, uploaded);
}

/** The job's identity on the answer, whatever it turns out to be: a client can ask the job API about it. */
function setJobHeaders(reply: FastifyReply, requestId: string, job: ImageSubmitReply): void {
  reply.header('x-request-id', requestId).header('x-homelab-job-id', job.id).header('x-homelab-backend', job.backend)
    .header('x-homelab-model', job.model).header('x-homelab-route-reason', job.routeReason);
}

async function followAndAnswer(
  deps: ImageRequestDeps, request: FastifyRequest, reply: FastifyReply, job: ImageSubmitReply, follower: JobFollower, operation: ImageOperation,
): Promise<void> {
  const sse = job.stream ? new ImageEventWriter(reply, operation, job) : undefined;
  const fail = (error: GatewayError): void => {
    if (sse) sse.error(error);
    else sendImageError(reply, error, request.id);
  };
  try {
    const outcome = await followImageJob(job, follower, deps.jobs, deps.config.images.jobs, sse);
    if (outcome.kind === 'gone') return;
    if (outcome.kind === 'error') return fail(outcome.error);
    const answer = await buildImagesAnswer(await deps.files(), job, outcome.result, {
      baseUrl: deps.config.images.files.baseUrl ?? `${request.protocol}://${request.host}`,
      urlTtlSeconds: deps.config.images.files.urlTtlSeconds,
      stream: sse !== undefined,
    });
    if (sse) sse.completed(answer.images, outcome.result);
    else reply.code(200).header('content-type', 'application/json').send(JSON.stringify(answer.body));
  } catch (err) {
    const error = asGatewayError(err, 'the image job\'s outcome could not be read');
    if (error.code === 'internal_error') deps.log.error({ err, requestId: request.id, job: job.id }, 'image request failed');
    fail(error);
  }
}

async function dropInputs(deps: ImageRequestDeps, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  let store: ImageFiles;
  try {
    store = await deps.files();
  } catch {
    return; // the bucket's TTL removes them
  }
  for (const id of ids) await store.delete(id);
}
