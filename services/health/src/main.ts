import {
  Subjects, exitOnStartFailure, healthProbeSubject, respondJson, runService,
} from '@homelab/bus';
import { ServiceDiscovery } from './discovery.ts';
import { buildInventory, discoveryTarget } from './inventory.ts';
import { HealthMonitor } from './monitor.ts';
import { Notifier } from './notify.ts';
import { HealthStore, HealthWriter, eventPublisherFor } from './store.ts';

const NAME = 'health';

await runService({
  configArea: 'health',
  name: NAME,
  description: 'Probes every node and service of the lab; publishes state changes and serves the live status',
  streams: ['HEALTH', 'HEALTH_PROBES'],
  async start({ nc, log, config, service, events }) {
    const h = config.health;
    const store = await HealthStore.open(nc, { replicas: config.nats.replicas, log });
    const initial = await store.loadAll();
    const writer = new HealthWriter({
      publishEvent: eventPublisherFor(events), putRecord: (r) => store.put(r), deleteRecord: (k) => store.delete(k), log,
    });
    const notifier = new Notifier({ alerts: h.alerts, lab: config.lab.name, log });
    notifier.seed(initial);
    // Probe results share the service's publisher: one mux, one way to publish.
    const probes = events;
    let probeFailures = 0;

    const monitor = new HealthMonitor({
      targets: buildInventory(config),
      lab: config.lab.name,
      log,
      maxBodyBytes: h.maxBodyBytes,
      certExpiryWarnDays: h.certExpiryWarnDays,
      initial,
      keepInitial: (r) => (h.discovery.enabled && r.node === h.discovery.node ? discoveryTarget(r.service, h) : undefined),
      startJitterMs: Math.min(1000, h.intervalMs),
      startupGraceMs: h.startupGraceMs,
      onChange: (event) => {
        writer.event(event);
        void notifier.notify(event);
      },
      onRecord: (record) => writer.record(record),
      onForget: (key) => writer.forget(key),
      onResult: (result) => {
        if (!h.publishProbeResults) return;
        probes.publish('healthProbe', result, { subject: healthProbeSubject(result.node, result.service) }).then(
          () => { probeFailures = 0; },
          (err: unknown) => { if (probeFailures++ === 0) log.warn({ err: (err as Error).message }, 'probe results not stored'); },
        );
      },
    });

    service.addEndpoint('status', {
      subject: Subjects.healthStatus.subject, queue: NAME, schema: Subjects.healthStatus.schema,
      handler: ({ msg, payload }) => respondJson(msg, monitor.snapshot(payload ?? undefined)),
    });

    const targets = monitor.targets();
    log.info({
      targets: targets.length, probed: targets.filter((t) => t.spec).length, restored: initial.length,
      alerts: [h.alerts.webhook && 'webhook', h.alerts.ntfy && 'ntfy'].filter(Boolean),
    }, 'health monitor starting');
    for (const t of targets) if (!t.spec && t.reason) log.info({ key: t.key }, `not probed: ${t.key} (${t.reason})`);
    monitor.start();
    const discovery = h.discovery.enabled ? new ServiceDiscovery({ nc, monitor, health: h, log, selfName: NAME }) : undefined;
    discovery?.start();

    return async () => {
      await discovery?.stop();
      await monitor.stop();
      await writer.close(3000);
      await Promise.race([notifier.flush(), new Promise((r) => setTimeout(r, 3000).unref())]);
    };
  },
}).catch(exitOnStartFailure(NAME));
