// Metrics read at scrape time: each gauge or counter is a collect() callback over counters the
// process already keeps, so nothing is added on the hot path. One Registry per process (never
// prom-client's global one), with prom-client's process metrics (CPU, RSS, fds, event loop lag).
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

export type Labels = Record<string, string>;
/** What a collector reports at one scrape: one value per label set. */
export type Samples = Iterable<readonly [Labels, number]>;

export function newProcessRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** A gauge whose every series is read at scrape time (series not reported this time disappear). */
export function gaugeFrom(registry: Registry, name: string, help: string, labelNames: readonly string[], read: () => Samples): Gauge {
  return new Gauge({
    name, help, labelNames, registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.set(labels, value);
    },
  });
}

/** A counter mirrored from a count kept elsewhere (monotonic there; prom-client only adds). */
export function counterFrom(registry: Registry, name: string, help: string, labelNames: readonly string[], read: () => Samples): Counter {
  return new Counter({
    name, help, labelNames, registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.inc(labels, Math.max(0, value));
    },
  });
}

/** camelCase field name → snake_case label value (noRoute → no_route), as Prometheus labels read. */
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Object fields as samples of one label: {noRoute: 1} → [{reason: 'no_route'}, 1]. */
export function fieldsAs(label: string, counts: Record<string, number>, extra: Labels = {}): Array<readonly [Labels, number]> {
  return Object.entries(counts).map(([k, v]) => [{ ...extra, [label]: snakeCase(k) }, v] as const);
}

export const one = (value: number): Samples => [[{}, value]];
