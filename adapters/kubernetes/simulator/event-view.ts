// The events.k8s.io/v1 view of the core/v1 Events the simulator stores: the same objects under the newer field names.
import type { KubeObject } from './types.js';

/** A core/v1 Event as events.k8s.io/v1 presents it (the API server's conversion, read direction). */
export function eventsV1View(event: KubeObject): KubeObject {
  const fields: [string, unknown][] = [
    ['eventTime', event.eventTime ?? null],
    ['series', event.series],
    ['reportingController', event.reportingComponent],
    ['reportingInstance', event.reportingInstance],
    ['action', event.action],
    ['reason', event.reason],
    ['regarding', event.involvedObject],
    ['related', event.related],
    ['note', event.message],
    ['type', event.type],
    ['deprecatedSource', event.source],
    ['deprecatedFirstTimestamp', event.firstTimestamp],
    ['deprecatedLastTimestamp', event.lastTimestamp],
    ['deprecatedCount', event.count],
  ];
  return {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    metadata: event.metadata,
    ...Object.fromEntries(fields.filter(([, value]) => value !== undefined)),
  };
}
