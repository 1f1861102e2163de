// The kubelets of every node: a bound pod starts Running, turns Ready once its readiness probe passes
// (podReadyAfterMs after binding, never for a neverReady image), and a Job's pod then runs to Succeeded.
import { createHash } from 'node:crypto';
import type { EventRecorder, EventNote } from './events.js';
import type { Faults } from './faults.js';
import { timestamp } from './naming.js';
import { podBehaviour } from './pod-metrics.js';
import { images, isReady, isTerminal } from './pods.js';
import type { Registry } from './registry.js';
import type { Scheduler } from './scheduler.js';
import { NODES, PODS } from './resources.js';
import type { Condition, Pod } from './types.js';

export const KUBELET = 'kubelet';

/** How much longer than becoming Ready a Job's pod runs before it succeeds. */
const JOB_RUN_FACTOR = 4;

function podCondition(type: string, ready: boolean, at: string, reason?: string, message?: string): Condition {
  return {
    type,
    status: ready ? 'True' : 'False',
    lastProbeTime: null,
    lastTransitionTime: at,
    ...(reason ? { reason } : {}),
    ...(message ? { message } : {}),
  };
}

export class Kubelet {
  private readonly readyAt = new Map<string, number>();
  /** Pods whose containers run, as last seen: a pod that disappears has its containers stopped (Killing). */
  private readonly running = new Map<string, Pod>();
  /** Pods already reported Unhealthy, so a failing readiness probe is reported once. */
  private readonly unhealthy = new Set<string>();
  private nextIp = 0;

  constructor(
    private readonly registry: Registry,
    private readonly scheduler: Scheduler,
    private readonly faults: Faults,
    private readonly events: EventRecorder,
    private readonly readyAfterMs: number,
  ) {}

  /** An event from the kubelet of the pod's node, about one of its containers. */
  private note(pod: Pod, container: string, note: Omit<EventNote, 'fieldPath'>, now: number): void {
    this.events.record({ component: KUBELET, host: pod.spec.nodeName! }, pod, { ...note, fieldPath: `spec.containers{${container}}` }, now);
  }

  run(now: number): void {
    const pods = this.registry.list(PODS) as Pod[];
    const present = new Set(pods.map((p) => p.metadata.uid!));
    for (const uid of [...this.readyAt.keys()]) if (!present.has(uid)) this.readyAt.delete(uid);
    for (const uid of [...this.scheduler.boundAt.keys()]) if (!present.has(uid)) this.scheduler.boundAt.delete(uid);
    for (const uid of [...this.unhealthy]) if (!present.has(uid)) this.unhealthy.delete(uid);
    for (const [uid, pod] of [...this.running]) {
      if (present.has(uid)) continue;
      // Deleted or evicted: there is no graceful termination, so the containers stop at once.
      this.running.delete(uid);
      for (const c of pod.spec.containers ?? []) this.note(pod, c.name, { type: 'Normal', reason: 'Killing', message: `Stopping container ${c.name}` }, now);
    }

    for (const pod of pods) {
      if (!pod.spec.nodeName || isTerminal(pod)) continue;
      const uid = pod.metadata.uid!;
      if (!this.scheduler.boundAt.has(uid)) this.scheduler.boundAt.set(uid, now);
      const boundAt = this.scheduler.boundAt.get(uid)!;
      if (pod.status?.phase !== 'Running') {
        this.start(pod, now);
      } else if (!isReady(pod)) {
        if (now - boundAt >= this.readyAfterMs && !this.faults.isNeverReady(images(pod)) && podBehaviour(pod) !== 'never-ready') {
          this.setReady(pod, now);
          this.readyAt.set(uid, now);
        } else if (now - boundAt >= this.readyAfterMs && !this.unhealthy.has(uid)) {
          this.unhealthy.add(uid);
          for (const c of pod.spec.containers ?? []) {
            this.note(pod, c.name, { type: 'Warning', reason: 'Unhealthy', message: 'Readiness probe failed: the cluster simulator keeps this image unready (faults.neverReady)' }, now);
          }
        }
      } else if (pod.metadata.ownerReferences?.some((o) => o.kind === 'Job' && o.controller)) {
        const readyAt = this.readyAt.get(uid) ?? now;
        if (!this.readyAt.has(uid)) this.readyAt.set(uid, now);
        if (now - readyAt >= this.readyAfterMs * JOB_RUN_FACTOR) this.succeed(pod, now);
      }
    }
  }

  private hostIp(nodeName: string): string {
    const node = this.registry.find(NODES, undefined, nodeName);
    const addresses = (node?.status?.addresses ?? []) as { type: string; address: string }[];
    return addresses.find((a) => a.type === 'InternalIP')?.address ?? '10.0.0.1';
  }

  private start(pod: Pod, now: number): void {
    const at = timestamp(now);
    const n = this.nextIp++;
    const podIp = `10.244.${Math.floor(n / 250) % 250}.${(n % 250) + 2}`;
    const hostIp = this.hostIp(pod.spec.nodeName!);
    const names = (pod.spec.containers ?? []).map((c) => c.name);
    const next = structuredClone(pod);
    next.status = {
      ...next.status,
      phase: 'Running',
      hostIP: hostIp,
      hostIPs: [{ ip: hostIp }],
      podIP: podIp,
      podIPs: [{ ip: podIp }],
      startTime: at,
      qosClass: 'Burstable',
      conditions: [
        podCondition('PodReadyToStartContainers', true, at),
        podCondition('Initialized', true, at),
        podCondition('Ready', false, at, 'ContainersNotReady', `containers with unready status: [${names.join(' ')}]`),
        podCondition('ContainersReady', false, at, 'ContainersNotReady', `containers with unready status: [${names.join(' ')}]`),
        podCondition('PodScheduled', true, at),
      ],
      containerStatuses: (pod.spec.containers ?? []).map((c) => ({
        name: c.name,
        image: c.image,
        imageID: `${c.image}@sha256:${createHash('sha256').update(c.image ?? '').digest('hex')}`,
        containerID: `containerd://${createHash('sha256').update(`${pod.metadata.uid}/${c.name}`).digest('hex')}`,
        ready: false,
        restartCount: 0,
        started: true,
        state: { running: { startedAt: at } },
      })),
    };
    this.write(pod, next);
    for (const c of pod.spec.containers ?? []) {
      this.note(pod, c.name, { type: 'Normal', reason: 'Pulled', message: `Container image "${c.image ?? ''}" already present on machine` }, now);
      this.note(pod, c.name, { type: 'Normal', reason: 'Created', message: `Created container ${c.name}` }, now);
      this.note(pod, c.name, { type: 'Normal', reason: 'Started', message: `Started container ${c.name}` }, now);
    }
  }

  private setReady(pod: Pod, now: number): void {
    const at = timestamp(now);
    const next = structuredClone(pod);
    const conditions = (next.status?.conditions ?? []).map((c) =>
      c.type === 'Ready' || c.type === 'ContainersReady' ? podCondition(c.type, true, at) : c,
    );
    const statuses = ((next.status?.containerStatuses ?? []) as Record<string, unknown>[]).map((s) => ({ ...s, ready: true }));
    next.status = { ...next.status, conditions, containerStatuses: statuses };
    this.write(pod, next);
  }

  private succeed(pod: Pod, now: number): void {
    const at = timestamp(now);
    const next = structuredClone(pod);
    const conditions = (next.status?.conditions ?? []).map((c) =>
      c.type === 'Ready' || c.type === 'ContainersReady' ? podCondition(c.type, false, at, 'PodCompleted') : c,
    );
    const statuses = ((next.status?.containerStatuses ?? []) as Record<string, unknown>[]).map((s) => ({
      ...s,
      ready: false,
      started: false,
      state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: next.status?.startTime ?? at, finishedAt: at } },
    }));
    next.status = { ...next.status, phase: 'Succeeded', conditions, containerStatuses: statuses };
    this.write(pod, next);
  }

  private write(pod: Pod, next: Pod): void {
    const written = this.registry.update(PODS, pod.metadata.namespace, pod.metadata.name!, next, { manager: KUBELET, internal: true }).object as Pod;
    if (written.status?.phase === 'Running') this.running.set(written.metadata.uid!, written);
    else this.running.delete(written.metadata.uid!);
  }
}
