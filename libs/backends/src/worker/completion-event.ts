import { nowMs, traceIdOf, type InferenceCompleted } from '@homelab/bus';
import { operationName, type AnswerFacts } from '@homelab/dialects';
import type { ProviderName } from '../types.ts';
import type { WorkerEnvelope } from './envelope.ts';

/** How one request ended at the worker. */
export interface WorkerOutcome {
  status: InferenceCompleted['status'];
  httpStatus: number;
  errorType?: string;
  /** The stream was cut after content reached the client. */
  truncated?: boolean;
  /** Time spent waiting on the backend (the whole answer). */
  backendMs?: number;
  /** Time to the first content. */
  ttftMs?: number;
  /** Ollama's model load time. */
  loadMs?: number;
  facts: AnswerFacts;
}

/** The `inference.completed` event of a request the worker answered (its message id is the request id). */
export function completedEvent(envelope: WorkerEnvelope, provider: ProviderName, outcome: WorkerOutcome): InferenceCompleted {
  const latencyMs = nowMs() - envelope.receivedAt;
  const { facts } = outcome;
  const traceId = traceIdOf(envelope.traceparent);
  return {
    requestId: envelope.requestId, operation: operationName(envelope.dialect), dialect: envelope.dialect.name, stream: envelope.stream,
    requestedModel: envelope.requestedModel, model: envelope.model, backend: provider,
    status: outcome.status, httpStatus: outcome.httpStatus, attempts: envelope.attempt, routeReason: envelope.routeReason, latencyMs,
    ...(outcome.errorType !== undefined && { errorType: outcome.errorType }),
    ...(outcome.truncated && { truncated: true }),
    ...(outcome.backendMs !== undefined && { backendMs: outcome.backendMs, overheadMs: Math.max(0, latencyMs - outcome.backendMs) }),
    ...(outcome.ttftMs !== undefined && { ttftMs: outcome.ttftMs }),
    ...(outcome.loadMs !== undefined && { loadMs: outcome.loadMs }),
    ...(facts.responseModel !== undefined && { responseModel: facts.responseModel }),
    ...(facts.inputTokens !== undefined && { inputTokens: facts.inputTokens }),
    ...(facts.outputTokens !== undefined && { outputTokens: facts.outputTokens }),
    ...(facts.cachedTokens !== undefined && { cachedTokens: facts.cachedTokens }),
    ...(facts.finishReason !== undefined && { finishReason: facts.finishReason }),
    ...(traceId && { traceId }),
    ...(envelope.keyName && { apiKey: envelope.keyName }),
    finishedAt: new Date().toISOString(),
  };
}
