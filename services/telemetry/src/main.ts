import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { Streams, exitOnStartFailure, listenOrExplain, runService } from '@homelab/bus';
import { pollInFlight } from './inflight.ts';
import { pollImageQueue } from './image-queue.ts';
import { primeFromSnapshots, startConsumers } from './consumers.ts';
import { METER_NAME, TelemetryMetrics, createMeterProvider, metricsOptionsFromConfig } from './metrics.ts';
import { startMetricsServer, type MetricsServer } from './server.ts';

// The exporter is a pull reader: Prometheus's scrape of /metrics is the collection.
const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
const provider = createMeterProvider([exporter]);
// Event streams only: a work queue (image jobs) is its workers'; its depth is read from its info instead.
const streams = Streams.filter((s) => s.retention !== 'workqueue').map((s) => s.name);
let metrics: TelemetryMetrics | undefined;
let server: MetricsServer | undefined;
let connected = false;
let consuming = false;

await runService({
  name: 'telemetry',
  description: 'Turns the event streams into OpenTelemetry metrics, served to Prometheus on /metrics',
  streams,
  async beforeConnect({ config, log }) {
    metrics = new TelemetryMetrics(provider.getMeter(METER_NAME), metricsOptionsFromConfig(config));
    const { metricsHost: host, metricsPort: port } = config.telemetry;
    server = await listenOrExplain(() => startMetricsServer({ exporter, host, port, ready: () => connected && consuming }), { what: '/metrics', host, port, variable: 'METRICS_PORT' });
    log.info({ host, port: server.port }, `metrics on http://${host}:${server.port}/metrics`);
  },
  onConnectionChange: (up) => { connected = up; },
  async start({ nc, log }) {
    connected = true;
    await primeFromSnapshots(nc, metrics!, log);
    const consumers = await startConsumers({ nc, log, metrics: metrics!, streams });
    const inFlight = pollInFlight(nc, (byProvider, faults) => metrics!.inference.recordInFlight(byProvider, faults), log);
    const imageQueue = pollImageQueue(nc, (backend, queued, running) => metrics!.images.recordQueue(backend, queued, running), log);
    consuming = true;
    return async () => {
      inFlight.stop();
      imageQueue.stop();
      consuming = false;
      await consumers.stop();
      await server?.close();
      await provider.shutdown();
    };
  },
}).catch(exitOnStartFailure('telemetry'));
