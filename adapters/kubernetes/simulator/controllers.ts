// The control loop: every controllerIntervalMs (and soon after any client write) the garbage collector, scheduler,
// kubelets, workload controllers, node lifecycle and disruption controllers each take one reconcile pass.
import { setCondition } from './conditions.js';
import { DeploymentController } from './deployment-controller.js';
import { evaluateBudget } from './disruption.js';
import type { EventRecorder } from './events.js';
import type { Faults } from './faults.js';
import { JobController } from './job-controller.js';
import { Kubelet, KUBELET } from './kubelet.js';
import { timestamp } from './naming.js';
import type { Registry } from './registry.js';
import { NODES, PDBS } from './resources.js';
import { Scheduler } from './scheduler.js';
import { StatefulSetController } from './statefulset-controller.js';
import type { Condition, NodeSpec } from './types.js';
import { CONTROLLER_MANAGER } from './workload-pods.js';

const UNSCHEDULABLE_TAINT = 'node.kubernetes.io/unschedulable';

export class ControlLoop {
  private readonly scheduler: Scheduler;
  private readonly kubelet: Kubelet;
  private readonly deployments: DeploymentController;
  private readonly statefulSets: StatefulSetController;
  private readonly jobs: JobController;
  private timer: NodeJS.Timeout | undefined;
  private nudged: NodeJS.Immediate | undefined;
  private running = false;
  private stopped = false;
  /** The first error a pass threw; the loop stops there rather than go on from a broken state. */
  failure: unknown;

  constructor(
    private readonly registry: Registry,
    faults: Faults,
    private readonly events: EventRecorder,
    private readonly intervalMs: number,
    podReadyAfterMs: number,
  ) {
    this.scheduler = new Scheduler(registry, events);
    this.kubelet = new Kubelet(registry, this.scheduler, faults, events, podReadyAfterMs);
    this.deployments = new DeploymentController(registry, events);
    this.statefulSets = new StatefulSetController(registry, events);
    this.jobs = new JobController(registry, events);
  }

  start(): void {
    this.timer = setInterval(() => this.pass(), this.intervalMs);
    this.timer.unref();
  }

  /** Asks for a pass soon: writes coalesce into one pass on the next turn of the event loop. */
  nudge(): void {
    if (this.nudged || this.stopped || this.running) return;
    this.nudged = setImmediate(() => {
      this.nudged = undefined;
      this.pass();
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.nudged) clearImmediate(this.nudged);
    this.nudged = undefined;
  }

  /** One reconcile pass of every controller, in the order a pod travels: placed, started, counted. */
  pass(now: number = Date.now()): void {
    if (this.stopped || this.running || this.failure !== undefined) return;
    this.running = true;
    try {
      this.registry.collectGarbage();
      this.syncNodes(now);
      this.scheduler.run(now);
      this.kubelet.run(now);
      this.deployments.run(now);
      this.statefulSets.run(now);
      this.jobs.run(now);
      // Pods made in this pass are placed at once, as a real scheduler would within milliseconds.
      this.scheduler.run(now);
      this.syncBudgets(now);
    } catch (error) {
      // Kept, not thrown: the server answers every later request with it, so whoever drives the cluster sees it.
      this.failure = error;
      this.stop();
    } finally {
      this.running = false;
    }
  }

  /** Node lifecycle: a cordoned node carries the unschedulable NoSchedule taint, as the node controller adds it. */
  private syncNodes(now: number): void {
    for (const node of this.registry.list(NODES)) {
      const spec = (node.spec ?? {}) as NodeSpec;
      const taints = spec.taints ?? [];
      const tainted = taints.some((t) => t.key === UNSCHEDULABLE_TAINT);
      if (Boolean(spec.unschedulable) === tainted) continue;
      const next = structuredClone(node);
      const rest = taints.filter((t) => t.key !== UNSCHEDULABLE_TAINT);
      const nextTaints = spec.unschedulable ? [...rest, { key: UNSCHEDULABLE_TAINT, effect: 'NoSchedule', timeAdded: timestamp(now) }] : rest;
      next.spec = { ...next.spec, taints: nextTaints };
      if (nextTaints.length === 0) delete next.spec.taints;
      const { object } = this.registry.update(NODES, undefined, node.metadata.name!, next, { manager: 'node-controller', internal: true });
      const state = spec.unschedulable ? 'NodeNotSchedulable' : 'NodeSchedulable';
      this.events.record({ component: KUBELET, host: node.metadata.name! }, object, { type: 'Normal', reason: state, message: `Node ${node.metadata.name} status is now: ${state}` }, now);
    }
  }

  /** The disruption controller: each PodDisruptionBudget's status, from the pods it selects now. */
  private syncBudgets(now: number): void {
    for (const pdb of this.registry.list(PDBS)) {
      const state = evaluateBudget(this.registry, pdb);
      const allowed = state.disruptionsAllowed > 0;
      const conditions = setCondition(
        (pdb.status?.conditions ?? []) as Condition[],
        { type: 'DisruptionAllowed', status: allowed ? 'True' : 'False', reason: allowed ? 'SufficientPods' : 'InsufficientPods', message: '' },
        timestamp(now),
        false,
      );
      const next = { ...pdb, status: { observedGeneration: pdb.metadata.generation, ...state, conditions } };
      this.registry.update(PDBS, pdb.metadata.namespace, pdb.metadata.name!, next, { manager: CONTROLLER_MANAGER, internal: true });
    }
  }
}
