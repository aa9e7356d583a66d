export * from './tracing.ts';
export * from './genai.ts';
export { childSpanContext, formatTraceparent, parseTraceparent } from './traceparent.ts';
