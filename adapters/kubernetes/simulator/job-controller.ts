// The Job controller: keeps `parallelism` pods running until `completions` have succeeded, then marks the Job Complete;
// honours suspend and activeDeadlineSeconds.
import { findCondition, removeCondition, setCondition } from './conditions.js';
import type { EventRecorder } from './events.js';
import { timestamp } from './naming.js';
import { isReady, isTerminal } from './pods.js';
import type { Registry } from './registry.js';
import { JOBS } from './resources.js';
import type { Condition, JobSpec, KubeObject, Pod } from './types.js';
import { CONTROLLER_MANAGER, createPod, deletePod, ownedPods, removalOrder, unschedulableMessage } from './workload-pods.js';

const SOURCE = { component: 'job-controller' };

export class JobController {
  /** When each Job started, in ms, for activeDeadlineSeconds. */
  private readonly startedAt = new Map<string, number>();

  constructor(
    private readonly registry: Registry,
    private readonly events: EventRecorder,
  ) {}

  run(now: number): void {
    const jobs = this.registry.list(JOBS);
    const live = new Set(jobs.map((j) => j.metadata.uid!));
    for (const uid of [...this.startedAt.keys()]) if (!live.has(uid)) this.startedAt.delete(uid);
    for (const job of jobs) this.sync(job, now);
  }

  private sync(job: KubeObject, now: number): void {
    const spec = (job.spec ?? {}) as JobSpec;
    const uid = job.metadata.uid!;
    const at = timestamp(now);
    let conditions = (job.status?.conditions ?? []) as Condition[];
    const finished = ['Complete', 'Failed'].some((type) => findCondition(conditions, type)?.status === 'True');
    let failure: string | undefined;
    const status: Record<string, unknown> = { ...job.status };
    const note = (type: 'Normal' | 'Warning', reason: string, message: string) => this.events.record(SOURCE, job, { type, reason, message }, now);
    const remove = (pods: Pod[]) => {
      for (const pod of pods) {
        deletePod(this.registry, pod);
        note('Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name}`);
      }
    };

    if (!finished) {
      let pods = ownedPods(this.registry, job);
      let active = pods.filter((p) => !isTerminal(p));
      const succeeded = pods.filter((p) => p.status?.phase === 'Succeeded').length;
      const parallelism = spec.parallelism ?? 1;
      if (!spec.suspend && !this.startedAt.has(uid)) this.startedAt.set(uid, now);
      const started = this.startedAt.get(uid);
      const overDeadline = spec.activeDeadlineSeconds !== undefined && started !== undefined && now - started > spec.activeDeadlineSeconds * 1000;
      const done = spec.completions !== undefined ? succeeded >= spec.completions : succeeded > 0 && active.length === 0;

      if (overDeadline) {
        remove(active);
        note('Warning', 'DeadlineExceeded', 'Job was active longer than specified deadline');
        conditions = setCondition(conditions, { type: 'FailureTarget', status: 'True', reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' }, at, false);
        conditions = setCondition(conditions, { type: 'Failed', status: 'True', reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' }, at, false);
      } else if (spec.suspend) {
        remove(active);
        if (findCondition(conditions, 'Suspended')?.status !== 'True') note('Normal', 'Suspended', 'Job suspended');
        conditions = setCondition(conditions, { type: 'Suspended', status: 'True', reason: 'JobSuspended', message: 'Job suspended' }, at, false);
      } else if (done) {
        conditions = setCondition(conditions, { type: 'SuccessCriteriaMet', status: 'True', reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods' }, at, false);
        conditions = setCondition(conditions, { type: 'Complete', status: 'True', reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods' }, at, false);
        status.completionTime = at;
        note('Normal', 'Completed', 'Job completed');
      } else {
        if (findCondition(conditions, 'Suspended')?.status === 'True') note('Normal', 'Resumed', 'Job resumed');
        if (findCondition(conditions, 'Suspended')) {
          conditions = setCondition(conditions, { type: 'Suspended', status: 'False', reason: 'JobResumed', message: 'Job resumed' }, at, false);
        }
        const wanted = spec.completions !== undefined ? Math.min(parallelism, spec.completions - succeeded) : succeeded > 0 ? 0 : parallelism;
        for (let i = active.length; i < wanted && !failure; i++) {
          const result = createPod(this.registry, { owner: job, ownerDef: JOBS, template: spec.template ?? {}, generateName: `${job.metadata.name}-` });
          failure = result.failure;
          if (result.pod) note('Normal', 'SuccessfulCreate', `Created pod: ${result.pod.metadata.name}`);
          else note('Warning', 'FailedCreate', `Error creating: ${result.failure}`);
        }
        if (active.length > wanted) remove(removalOrder(active).slice(0, active.length - wanted));
      }

      pods = ownedPods(this.registry, job);
      active = pods.filter((p) => !isTerminal(p));
      failure ??= unschedulableMessage(active);
      if (started !== undefined) status.startTime ??= timestamp(started);
      status.active = active.length;
      status.ready = active.filter(isReady).length;
      status.succeeded = pods.filter((p) => p.status?.phase === 'Succeeded').length;
      if (status.active === 0) delete status.active;
      if (status.succeeded === 0) delete status.succeeded;
    }

    conditions = failure
      ? setCondition(conditions, { type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: failure }, at, false)
      : removeCondition(conditions, 'ReplicaFailure');
    if (conditions.length > 0) status.conditions = conditions;
    else delete status.conditions;
    const next = { ...job, status };
    this.registry.update(JOBS, job.metadata.namespace, job.metadata.name!, next, { manager: CONTROLLER_MANAGER, internal: true });
  }
}
