// The telemetry the rest of Sentinel reads: the newest value of each series the node agents pushed. Samples are not
// events; this is the port the query side, rollout analysis and InfraMind read them through (the sample store
// implements it).

/** The newest value of one series. */
export interface LatestSample {
  clusterId: string;
  nodeName: string;
  metric: string;
  labels: Record<string, string>;
  value: number;
  time: Date;
}

/** The newest value of each series seen since `since`, narrowed by cluster, node and metric name prefix. */
export interface LatestSamples {
  latestSamples(query: { clusterId?: string; nodeName?: string; metricPrefix?: string; since: Date }): Promise<LatestSample[]>;
}
