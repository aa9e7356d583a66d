import multipart from '@fastify/multipart';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { LabConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import type { RelayBus } from '../relay.ts';
import { asGatewayError, sendImageError } from './errors.ts';
import { imageFilesOpener, serveImageFile } from './files.ts';
import { natsJobControls } from './job.ts';
import { answerWithEditForm, answerWithJob, type ImageRequestDeps } from './request.ts';

export { isSignedImageFileUrl } from './files.ts';

/*
 * OpenAI's images API at the edge (docs/images.md): POST /v1/images/generations and /v1/images/edits
 * become jobs (`images.jobs.submit`, the router decides and queues), and the request follows its job
 * on its own inbox: progress, partial images (SSE when `stream: true`), keepalives, then the result,
 * whose images are read from the object store `images` as b64_json or served at
 * GET /v1/images/files/{id}.
 *
 *   request.ts    one request: submit, follow, answer
 *   job.ts        the job on the bus: submit, follow its inbox, ask its status, cancel
 *   edit-form.ts  the multipart edit form as the job's JSON
 *   answer.ts     OpenAI's answer from a job's result
 *   sse.ts        OpenAI's image stream events
 *   files.ts      GET /v1/images/files/{id}, and who may read a file
 */

export interface ImagesPluginOptions {
  config: LabConfig;
  log: Logger;
  bus: RelayBus;
  /** Keys are on: file URLs are signed, and a file is readable only with the key that made it. */
  keysOn: boolean;
}

export const imagesPlugin: FastifyPluginAsync<ImagesPluginOptions> = async (app, { config, log, bus, keysOn }) => {
  const deps: ImageRequestDeps = { config, log, bus, files: imageFilesOpener(bus, config), jobs: natsJobControls(bus, log) };

  await app.register(multipart, {
    limits: { fileSize: config.gateway.bodyLimitBytes, files: 17, fields: 40, fieldSize: 64 * 1024, parts: 60 },
  });

  app.post('/v1/images/generations', async (request, reply) => {
    await answerWithJob(deps, request, reply, bodyOf(request), 'generation');
  });

  app.post('/v1/images/edits', async (request, reply) => {
    // OpenAI's JSON form of edits (`images: [{image_url}]`) goes as it is: the router validates it.
    if (request.isMultipart()) await answerWithEditForm(deps, request, reply);
    else await answerWithJob(deps, request, reply, bodyOf(request), 'edit');
  });

  app.get('/v1/images/files/:id', async (request, reply) => {
    try {
      await serveImageFile(request, reply, await deps.files(), keysOn);
    } catch (err) {
      sendImageError(reply, asGatewayError(err, 'the image could not be read'), request.id);
    }
  });
};

/** The body as bytes (the ingress parses no body); none for a request that sent none. */
function bodyOf(request: FastifyRequest): Buffer {
  return request.body instanceof Buffer ? request.body : Buffer.alloc(0);
}
