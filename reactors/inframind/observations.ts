// What InfraMind observes of the fleet: the latest telemetry of every node and GPU, and what the fleet costs per hour.
import { toMicroUsd } from '../../domain/pricing.js';
import type { LatestSample } from '../../telemetry/sample-store.js';

/** One point of an observation: a series' latest value, labelled with where it was measured. */
export interface ObservedPoint {
  metric: string;
  labels: Record<string, string>;
  value: number;
}

export interface Observed {
  observedAt: Date;
  points: ObservedPoint[];
  /** Exact, in micro-dollars per hour. */
  fleetCostMicroUsdPerHour: number;
}

/** Where observations come from; the link asks every interval. */
export interface ObservationSource {
  observe(now: Date): Promise<Observed>;
}

export interface FleetObservationsOptions {
  /** The latest value of every series seen since `since` (SampleStore.latestSamples). */
  latestSamples(query: { since: Date }): Promise<LatestSample[]>;
  /** The fleet's cost per hour in dollars of whole micro-dollars, from the fleet-cost read model. */
  fleetHourlyUsd(): Promise<number>;
  /** Series older than this are left out: a silent node is not observed as if it were still running. */
  freshForMs: number;
}

/** Observations from the sample store and the fleet-cost read model. */
export class FleetObservations implements ObservationSource {
  constructor(private readonly options: FleetObservationsOptions) {}

  async observe(now: Date): Promise<Observed> {
    const [samples, hourlyUsd] = await Promise.all([
      this.options.latestSamples({ since: new Date(now.getTime() - this.options.freshForMs) }),
      this.options.fleetHourlyUsd(),
    ]);
    return {
      observedAt: now,
      points: samples.map((sample) => ({
        metric: sample.metric,
        labels: { ...sample.labels, cluster: sample.clusterId, node: sample.nodeName },
        value: sample.value,
      })),
      fleetCostMicroUsdPerHour: toMicroUsd(hourlyUsd),
    };
  }
}
