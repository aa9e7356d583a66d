import type { Counter, Gauge, Histogram, Meter } from '@opentelemetry/api';
import type { ImageCancelled, ImageCompleted, ImageFailed, ImageStarted, ImageSubmitted } from '@homelab/bus';
import { LabelBudget } from './labels.ts';
import { ImageAttr as A, ImageDurationBuckets, ImageMetric, StepsPerSecondBuckets } from './semconv.ts';

/**
 * Image jobs, from the IMAGES stream (docs/images.md) and the work queue's depth. Labels are the
 * backend, the model (config names, bounded), the outcome and a bounded reason: never a job id,
 * a prompt or a key.
 */
export class ImageMetrics {
  readonly #submitted: Counter;
  readonly #jobs: Counter;
  readonly #queued: Gauge;
  readonly #running: Gauge;
  readonly #queueWait: Histogram;
  readonly #duration: Histogram;
  readonly #stepsPerSecond: Histogram;
  readonly #images: Counter;
  readonly #failures: Counter;
  readonly #takeovers: Counter;
  readonly #cost: Counter;
  readonly #models = new LabelBudget(64);
  readonly #reasons = new LabelBudget(32);

  constructor(meter: Meter) {
    const durations = { unit: 's', advice: { explicitBucketBoundaries: ImageDurationBuckets } };
    this.#submitted = meter.createCounter(ImageMetric.submitted, { unit: '{job}', description: 'Image jobs accepted onto the work queue.' });
    this.#jobs = meter.createCounter(ImageMetric.jobs, { unit: '{job}', description: 'Image jobs ended, by outcome (completed, failed, cancelled).' });
    this.#queued = meter.createGauge(ImageMetric.queued, { unit: '{job}', description: 'Image jobs waiting in the work queue for a worker now.' });
    this.#running = meter.createGauge(ImageMetric.running, { unit: '{job}', description: 'Image jobs a worker holds now (running at the backend).' });
    this.#queueWait = meter.createHistogram(ImageMetric.queueWait, { ...durations, description: 'Time from a job accepted to a worker starting it.' });
    this.#duration = meter.createHistogram(ImageMetric.duration, { ...durations, description: 'Time a completed job ran at its backend.' });
    this.#stepsPerSecond = meter.createHistogram(ImageMetric.stepsPerSecond, { unit: '{step}/s', description: 'Sampler steps per second of each completed job.', advice: { explicitBucketBoundaries: StepsPerSecondBuckets } });
    this.#images = meter.createCounter(ImageMetric.images, { unit: '{image}', description: 'Images made.' });
    this.#failures = meter.createCounter(ImageMetric.failures, { unit: '{job}', description: 'Failed image jobs, by reason (validation, node_error, out_of_memory, lost, comfyui_unavailable, timeout, …).' });
    this.#takeovers = meter.createCounter(ImageMetric.takeovers, { unit: '{job}', description: 'Jobs given to a worker again after the one holding them died or stopped.' });
    this.#cost = meter.createCounter(ImageMetric.cost, { unit: 'USD', description: 'Estimated cost of cloud images, from images.prices.' });
  }

  submitted(e: ImageSubmitted): void {
    this.#submitted.add(1, this.#labels(e));
  }

  started(e: ImageStarted): void {
    if (e.attempt === 1) this.#queueWait.record(e.queueWaitMs / 1000, this.#labels(e));
    else this.#takeovers.add(1, this.#labels(e));
  }

  completed(e: ImageCompleted): void {
    const labels = this.#labels(e);
    this.#jobs.add(1, { ...labels, [A.outcome]: 'completed' });
    this.#duration.record(e.durationMs / 1000, labels);
    this.#images.add(e.images.length, labels);
    if (e.stepsPerSecond !== undefined && e.stepsPerSecond > 0) this.#stepsPerSecond.record(e.stepsPerSecond, labels);
    if (e.costUsd) this.#cost.add(e.costUsd, labels);
  }

  failed(e: ImageFailed): void {
    const labels = this.#labels(e);
    this.#jobs.add(1, { ...labels, [A.outcome]: 'failed' });
    this.#failures.add(1, { ...labels, [A.reason]: this.#reasons.value(e.error.reason) });
  }

  cancelled(e: ImageCancelled): void {
    this.#jobs.add(1, { ...this.#labels(e), [A.outcome]: 'cancelled', [A.phase]: e.phase });
  }

  /** The work queue's depth per backend (its consumers' waiting and unacknowledged jobs). */
  recordQueue(backend: string, queued: number, running: number): void {
    this.#queued.record(queued, { [A.backend]: backend });
    this.#running.record(running, { [A.backend]: backend });
  }

  #labels(e: { backend: string; model: string }): Record<string, string> {
    return { [A.backend]: e.backend, [A.model]: this.#models.value(e.model) };
  }
}
