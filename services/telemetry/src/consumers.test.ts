import { describe, expect, it } from 'vitest';
import { Streams, Subjects, type SubjectSpec } from '@homelab/bus';
import { durableName, eventHandlers, eventKeyResolver } from './consumers.ts';
import { metricsHarness } from './testkit.ts';

describe('consumers', () => {
  it('every event of the subject map turns into metrics: a new event kind needs its line in eventHandlers', async () => {
    const h = metricsHarness();
    const handlers = eventHandlers(h.metrics);
    const events = Object.entries(Subjects).filter(([, s]) => (s as SubjectSpec).kind === 'event').map(([k]) => k);
    expect(events.filter((k) => !(k in handlers))).toEqual([]);
    await h.shutdown();
  });

  it('maps each subject of a stream to its event, patterns included', () => {
    const health = eventKeyResolver('HEALTH');
    expect(health('health.ai-node.vllm')).toBe('healthChanged');
    expect(health('health.probe.ai-node.vllm')).toBeUndefined(); // another stream's subject
    expect(eventKeyResolver('HEALTH_PROBES')('health.probe.ai-node.vllm')).toBe('healthProbe');
    const media = eventKeyResolver('MEDIA');
    expect(media('media.storage')).toBe('mediaStorage');
    expect(media('media.storage.low')).toBe('mediaStorageLow');
    expect(media('media.download.imported')).toBe('mediaDownloadImported');
    expect(media('media.webhook.jellyfin')).toBe('mediaWebhook');
    expect(eventKeyResolver('INFERENCE')('inference.completed')).toBe('inferenceCompleted');
  });

  it('one durable consumer per stream, named for nats.conf', () => {
    expect(Streams.map((s) => durableName(s.name))).toEqual(expect.arrayContaining(['telemetry-inference', 'telemetry-health', 'telemetry-health-probes', 'telemetry-media']));
  });
});

describe('AppliedSequences', () => {
  it('recognises a redelivered sequence, and forgets old ones', async () => {
    const { AppliedSequences } = await import('./consumers.ts');
    const applied = new AppliedSequences();
    applied.add(5);
    expect(applied.has(5)).toBe(true);
    expect(applied.has(6)).toBe(false);
    for (let s = 6; s < 20_000; s++) applied.add(s);
    expect(applied.has(5)).toBe(false);
    expect(applied.has(19_999)).toBe(true);
  });
});
