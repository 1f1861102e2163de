// `sentinel describe`: one resource as a readable multi-line view, its history under it.
import { stringify } from 'yaml';
import { age, labelList, table } from './tables.js';
import type { ClusterView, DeploymentHistory, DeploymentView, PlanView, WorkloadView } from './views.js';

/** How many of a deployment's latest timeline entries `describe` shows. */
const RECENT_HISTORY = 12;

/** `Label:  value` lines, the values lined up. */
function fields(pairs: readonly (readonly [string, string | undefined])[]): string {
  const shown = pairs.filter((pair): pair is readonly [string, string] => pair[1] !== undefined);
  const width = Math.max(...shown.map(([label]) => label.length)) + 3;
  return shown.map(([label, value]) => `${`${label}:`.padEnd(width)}${value}\n`).join('');
}

/** A titled block: a table or text, indented under its title. */
function section(title: string, body: string): string {
  const indented = body
    .trimEnd()
    .split('\n')
    .map((line) => (line ? `  ${line}` : line))
    .join('\n');
  return `\n${title}:\n${indented}\n`;
}

function when(iso: string | null | undefined, now: number): string {
  return iso ? `${iso} (${age(iso, now)} ago)` : '-';
}

export function describeCluster(cluster: ClusterView, now = Date.now()): string {
  return fields([
    ['Name', cluster.name],
    ['ID', cluster.id],
    ['Status', cluster.cordonReason ? `${cluster.status}: ${cluster.cordonReason}` : cluster.status],
    ['Connection', connectionOf(cluster.connection, now)],
    ['Region', cluster.region],
    ['API server', cluster.apiServer],
    ['GPU SKUs', cluster.gpuSkus.length > 0 ? cluster.gpuSkus.join(', ') : '-'],
    ['Labels', labelList(cluster.labels)],
    ['Credentials', cluster.credentials.path ? `${cluster.credentials.source} (${cluster.credentials.path})` : cluster.credentials.source],
    ['Created', when(cluster.createdAt, now)],
    ['Updated', when(cluster.updatedAt, now)],
  ]);
}

function connectionOf(connection: ClusterView['connection'], now: number): string {
  const since = connection.since ? ` since ${when(connection.since, now)}` : '';
  return `${connection.state}${since}${connection.cause ? `: ${connection.cause}` : ''}`;
}

export function describeWorkload(workload: WorkloadView, now = Date.now()): string {
  const revisions = workload.revisions ?? [];
  return (
    fields([
      ['Name', workload.name],
      ['ID', workload.id],
      ['Namespace', workload.namespace],
      ['Type', workload.type],
      ['Status', workload.retiredReason ? `${workload.status}: ${workload.retiredReason}` : workload.status],
      ['Labels', labelList(workload.labels)],
      ['Spec revision', String(workload.specRevision)],
      ['Created', when(workload.createdAt, now)],
      ['Updated', when(workload.updatedAt, now)],
    ]) +
    section(`Spec (revision ${workload.specRevision})`, stringify(workload.spec)) +
    (revisions.length > 0
      ? section(
          'Spec revisions',
          table(
            ['REVISION', 'RECORDED', 'CHANGED'],
            revisions.map((revision) => [
              String(revision.specRevision),
              age(revision.recordedAt, now),
              revision.changes ? Object.keys(revision.changes).join(', ') : '(registered)',
            ]),
          ),
        )
      : '')
  );
}

export interface DeploymentNames {
  workload: string;
  cluster: string;
}

export function describeDeployment(deployment: DeploymentView, history: DeploymentHistory, names: DeploymentNames, now = Date.now()): string {
  const revisions = deployment.revisions ?? [];
  const recent = history.timeline.slice(-RECENT_HISTORY);
  const rollout = deployment.rollout;
  return (
    fields([
      ['ID', deployment.id],
      ['Workload', names.workload === deployment.workloadId ? deployment.workloadId : `${names.workload} (${deployment.workloadId})`],
      ['Cluster', names.cluster === deployment.clusterId ? deployment.clusterId : `${names.cluster} (${deployment.clusterId})`],
      ['Status', deployment.paused ? `${deployment.status}, paused` : deployment.status],
      [
        'Replicas',
        // The read side counts updated replicas only while a rollout progresses.
        `${deployment.replicas} desired, ${deployment.readyReplicas ?? 0} ready` +
          (deployment.status === 'Progressing' && deployment.updatedReplicas !== null ? `, ${deployment.updatedReplicas} updated` : ''),
      ],
      ['Revision', `${deployment.currentRevision} (workload spec revision ${deployment.workloadRevision})`],
      ['Strategy', deployment.strategy.type],
      ['Drift policy', deployment.driftPolicy],
      ['Rollout', rollout ? `${rollout.event}${rollout.revision !== null ? ` of revision ${rollout.revision}` : ''}${rollout.cause ? `: ${rollout.cause}` : ''}, ${age(rollout.at, now)} ago` : undefined],
      ['Last cause', deployment.lastCause ?? undefined],
      ['Created', when(deployment.createdAt, now)],
      ['Updated', when(deployment.updatedAt, now)],
    ]) +
    section(
      'Revisions',
      table(
        ['REVISION', 'WORKLOAD REV', 'ORIGIN', 'ROLLBACK OF', 'AVAILABLE', 'RECORDED', 'REASON'],
        revisions.map((revision) => [
          `${revision.revision}${revision.revision === deployment.currentRevision ? '*' : ''}`,
          String(revision.workloadRevision),
          revision.origin,
          revision.rollbackOf === null ? '-' : String(revision.rollbackOf),
          revision.becameAvailable ? 'yes' : 'no',
          age(revision.recordedAt, now),
          revision.reason ?? '',
        ]),
      ),
    ) +
    section(
      history.timeline.length > recent.length ? `Recent history (last ${recent.length} of ${history.timeline.length})` : 'History',
      recent.length === 0
        ? '(none yet)'
        : table(
            ['AGE', 'EVENT', 'STATUS', 'REVISION'],
            recent.map((entry) => [age(entry.at, now), entry.type, entry.status, String(entry.revision)]),
          ),
    )
  );
}

export function describePlan(plan: PlanView, now = Date.now()): string {
  return (
    fields([
      ['ID', plan.id],
      ['Status', plan.shadow ? `${plan.status} (shadow: judged, never carried out)` : plan.status],
      ['Source', plan.source],
      ['Submitted by', `${plan.actor.kind} ${plan.actor.id}`],
      ['Reason', plan.reason],
      ['Submitted', when(plan.submittedAt, now)],
      ['Expires', plan.expiresAt],
      ['Cause', plan.cause ?? undefined],
    ]) +
    (plan.violations && plan.violations.length > 0
      ? section('Violations', plan.violations.map((v) => `${v.path ? `${v.path}: ` : ''}${v.message}`).join('\n'))
      : '') +
    section(
      'Actions',
      table(
        ['#', 'KIND', 'TARGET', 'CHANGE', 'STATUS', 'DETAIL'],
        plan.actions.map((action) => [
          String(action.index),
          action.kind,
          `${action.target.kind} ${action.target.id}`,
          change(action.action),
          action.status,
          action.error ?? action.detail ?? '',
        ]),
      ),
    )
  );
}

/** An action's parameters besides its kind and target: `replicas=3`, `toRevision=2`. */
function change(action: Record<string, unknown>): string {
  const shown = Object.entries(action).filter(([key]) => key !== 'kind' && key !== 'deploymentId' && !(key === 'clusterId' && action['kind'] === 'drain'));
  return shown.length === 0 ? '-' : shown.map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`).join(' ');
}
