// The aggregates the write side runs commands against, each with its stream category and event catalogue.
import { actionPlanDecider, actionPlanEvents, type ActionPlan, type ActionPlanCommand, type ActionPlanEvent } from '../domain/action-plan.js';
import { autonomyDecider, autonomyEvents, type Autonomy, type AutonomyCommand, type AutonomyEvent } from '../domain/autonomy.js';
import { clusterDecider, clusterEvents, type Cluster, type ClusterCommand, type ClusterEvent } from '../domain/cluster.js';
import {
  deploymentDecider,
  deploymentEvents,
  type Deployment,
  type DeploymentCommand,
  type DeploymentEvent,
} from '../domain/deployment.js';
import { ledgerAuditDecider, ledgerAuditEvents, type LedgerAudit, type LedgerAuditCommand, type LedgerAuditEvent } from '../domain/ledger-audit.js';
import { nodeDecider, nodeEvents, type Node, type NodeCommand, type NodeEvent } from '../domain/node.js';
import { workloadDecider, workloadEvents, type Workload, type WorkloadCommand, type WorkloadEvent } from '../domain/workload.js';
import { policyEvents } from '../domain/policy-evaluation.js';
import { policySetDecider, policySetEvents, type PolicySet, type PolicySetCommand, type PolicySetEvent } from '../domain/policy-set.js';
import type { Aggregate } from './command-handler.js';

// `snapshotVersion`: raise an aggregate's whenever its state's shape, its `evolve` or an upcaster of its events
// changes, so that snapshots folded by the code before are ignored and the stream is folded again.

export const clusters: Aggregate<ClusterCommand, ClusterEvent, Cluster> = {
  category: 'cluster',
  decider: clusterDecider,
  events: clusterEvents,
  /** A drain is judged when it starts, and its decision recorded in the cluster's stream. */
  records: policyEvents,
  snapshotVersion: 1,
};

export const workloads: Aggregate<WorkloadCommand, WorkloadEvent, Workload> = {
  category: 'workload',
  decider: workloadDecider,
  events: workloadEvents,
  snapshotVersion: 1,
};

export const deployments: Aggregate<DeploymentCommand, DeploymentEvent, Deployment> = {
  category: 'deployment',
  decider: deploymentDecider,
  events: deploymentEvents,
  records: policyEvents,
  snapshotVersion: 3,
};

export const actionPlans: Aggregate<ActionPlanCommand, ActionPlanEvent, ActionPlan> = {
  category: 'plan',
  decider: actionPlanDecider,
  events: actionPlanEvents,
  records: policyEvents,
  snapshotVersion: 2,
};

/** Nodes that report telemetry, and the health facts derived from it, in stream `node-<nodeId(cluster, node name)>`. */
export const nodes: Aggregate<NodeCommand, NodeEvent, Node> = {
  category: 'node',
  decider: nodeDecider,
  events: nodeEvents,
  snapshotVersion: 1,
};

/** One policy set for now, in stream `policyset-global`. */
export const policySets: Aggregate<PolicySetCommand, PolicySetEvent, PolicySet> = {
  category: 'policyset',
  decider: policySetDecider,
  events: policySetEvents,
  snapshotVersion: 1,
};

/** The autonomy kill switch, in stream `autonomy-global`. */
export const autonomies: Aggregate<AutonomyCommand, AutonomyEvent, Autonomy> = {
  category: 'autonomy',
  decider: autonomyDecider,
  events: autonomyEvents,
  snapshotVersion: 1,
};

/** What the periodic comparison of the admission ledger with the deployments found, in stream `ledgeraudit-global`. */
export const ledgerAudits: Aggregate<LedgerAuditCommand, LedgerAuditEvent, LedgerAudit> = {
  category: 'ledgeraudit',
  decider: ledgerAuditDecider,
  events: ledgerAuditEvents,
  snapshotVersion: 1,
};
