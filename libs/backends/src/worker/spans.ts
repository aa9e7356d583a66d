import type { GatewayError, InferenceCompleted } from '@homelab/bus';
import { HomelabSpanAttr, genAiAttributes, genAiSpanName, type Tracing } from '@homelab/tracing';
import type { ProviderName } from '../types.ts';
import type { WorkerEnvelope } from './envelope.ts';

/** The worker's spans of one request: a `server` span for its part and a GenAI `client` span around the backend call. */
export interface WorkerSpans {
  finish(event: InferenceCompleted): void;
  fail(error: GatewayError): void;
}

/** Nothing is built when tracing is off. */
export function startWorkerSpans(tracing: Tracing | undefined, envelope: WorkerEnvelope, provider: ProviderName, operation: InferenceCompleted['operation'], backendUrl?: string): WorkerSpans | undefined {
  if (!tracing?.enabled) return undefined;
  const server = tracing.startHop(`${operation} ${provider} worker`, { traceparent: envelope.traceparent, kind: 'server', attributes: { [HomelabSpanAttr.requestId]: envelope.requestId } });
  const origin = backendUrl ? new URL(backendUrl) : undefined;
  const client = tracing.startHop(genAiSpanName(operation, envelope.model), {
    traceparent: server.traceparent, kind: 'client',
    attributes: genAiAttributes({ operation, provider, requestModel: envelope.model, ...(origin && { serverAddress: origin.hostname, serverPort: Number(origin.port) || (origin.protocol === 'https:' ? 443 : 80) }) }),
  });
  return {
    finish(e) {
      client.setAttributes(genAiAttributes({
        operation, ...(e.responseModel && { responseModel: e.responseModel }), ...(e.inputTokens !== undefined && { inputTokens: e.inputTokens }),
        ...(e.outputTokens !== undefined && { outputTokens: e.outputTokens }), ...(e.finishReason && { finishReasons: [e.finishReason] }),
      }));
      if (e.status === 'error') client.fail(new Error(e.errorType ?? 'error'), e.errorType);
      client.end();
      server.end();
    },
    fail(e) { client.fail(e, e.code).end(); server.fail(e, e.code).end(); },
  };
}
