import type { Attributes } from '@opentelemetry/api';

/*
 * Span attributes of the OpenTelemetry GenAI semantic conventions (gen-ai-spans), for the hops
 * of an inference request. Never the prompt or the answer: those stay out of traces too.
 */

export const GenAiSpanAttr = {
  operationName: 'gen_ai.operation.name',
  providerName: 'gen_ai.provider.name',
  requestModel: 'gen_ai.request.model',
  requestMaxTokens: 'gen_ai.request.max_tokens',
  requestTemperature: 'gen_ai.request.temperature',
  responseModel: 'gen_ai.response.model',
  responseId: 'gen_ai.response.id',
  responseFinishReasons: 'gen_ai.response.finish_reasons',
  inputTokens: 'gen_ai.usage.input_tokens',
  outputTokens: 'gen_ai.usage.output_tokens',
  errorType: 'error.type',
  serverAddress: 'server.address',
  serverPort: 'server.port',
} as const;

/** The gateway's own span attributes. */
export const HomelabSpanAttr = {
  requestId: 'homelab.request_id',
  attempt: 'homelab.attempt',
  routeReason: 'homelab.route_reason',
  stream: 'homelab.stream',
  ttftMs: 'homelab.ttft_ms',
} as const;

/** Messaging attributes of a hop that received its request over NATS. */
export const MessagingAttr = {
  system: 'messaging.system',
  destination: 'messaging.destination.name',
  operation: 'messaging.operation.type',
} as const;

export interface GenAiSpanInfo {
  operation: 'chat' | 'text_completion' | 'embeddings';
  provider?: string;
  requestModel?: string;
  responseModel?: string;
  responseId?: string;
  maxTokens?: number;
  temperature?: number;
  inputTokens?: number;
  outputTokens?: number;
  finishReasons?: string[];
  serverAddress?: string;
  serverPort?: number;
}

/** GenAI attributes for a span; only the fields given. */
export function genAiAttributes(info: GenAiSpanInfo): Attributes {
  const a: Attributes = { [GenAiSpanAttr.operationName]: info.operation };
  if (info.provider !== undefined) a[GenAiSpanAttr.providerName] = info.provider;
  if (info.requestModel !== undefined) a[GenAiSpanAttr.requestModel] = info.requestModel;
  if (info.responseModel !== undefined) a[GenAiSpanAttr.responseModel] = info.responseModel;
  if (info.responseId !== undefined) a[GenAiSpanAttr.responseId] = info.responseId;
  if (info.maxTokens !== undefined) a[GenAiSpanAttr.requestMaxTokens] = info.maxTokens;
  if (info.temperature !== undefined) a[GenAiSpanAttr.requestTemperature] = info.temperature;
  if (info.inputTokens !== undefined) a[GenAiSpanAttr.inputTokens] = info.inputTokens;
  if (info.outputTokens !== undefined) a[GenAiSpanAttr.outputTokens] = info.outputTokens;
  if (info.finishReasons !== undefined) a[GenAiSpanAttr.responseFinishReasons] = info.finishReasons;
  if (info.serverAddress !== undefined) a[GenAiSpanAttr.serverAddress] = info.serverAddress;
  if (info.serverPort !== undefined) a[GenAiSpanAttr.serverPort] = info.serverPort;
  return a;
}

/** The conventions' span name: `{gen_ai.operation.name} {gen_ai.request.model}` (`chat smart`). */
export function genAiSpanName(operation: string, model: string | undefined): string {
  return model ? `${operation} ${model}` : operation;
}

/** Messaging attributes for a hop that took its request from a NATS subject. */
export function natsAttributes(subject: string, operation: 'receive' | 'process' | 'send' = 'process'): Attributes {
  return { [MessagingAttr.system]: 'nats', [MessagingAttr.destination]: subject, [MessagingAttr.operation]: operation };
}
