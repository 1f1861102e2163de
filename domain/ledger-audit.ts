// The ledger audit (stream `ledgeraudit-global`): what a periodic comparison of the admission ledger with what the
// deployments hold found, recorded when it changes. The ledger must never count less than can run; a difference
// is a bug or a change that bypassed policy, and it is kept in the log where an auditor will look for it.
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { defineEvents, type Decider, type EventOf } from './decider.js';
import { footprintSchema } from './ledger.js';
import type { Footprint } from './policy.js';

/** The audit's one stream. */
export const LEDGER_AUDIT_ID = 'global';


const difference = z.object({
  deploymentId: z.string(),
  /** What the ledger holds for it; null when it holds nothing. */
  ledger: footprintSchema.nullable(),
  /** What the deployment can run, from its own stream; null when it runs nothing (deleted, or unknown). */
  deployment: footprintSchema.nullable(),
});
export type LedgerDifference = z.infer<typeof difference>;

export const ledgerAuditEvents = defineEvents({
  /** The ledger and the deployments disagree, on these: the whole list, replacing the one found before. */
  LedgerDriftFound: { version: 1, schema: z.object({ at: z.string(), differences: z.array(difference).min(1) }) },
  /** They agree again. */
  LedgerDriftCleared: { version: 1, schema: z.object({ at: z.string() }) },
});
export type LedgerAuditEvent = EventOf<typeof ledgerAuditEvents>;

export interface LedgerAudit {
  /** What the last recorded audit found; empty when the ledger agreed. */
  differences: LedgerDifference[];
}

export type LedgerAuditCommand = { type: 'RecordLedgerAudit'; at: string; differences: LedgerDifference[] };

export const initialState: LedgerAudit = { differences: [] };

export function evolve(state: LedgerAudit, event: LedgerAuditEvent): LedgerAudit {
  return event.type === 'LedgerDriftFound' ? { differences: event.data.differences } : { differences: [] };
}

/** Edge-triggered: an audit that finds what the last one found records nothing. */
export function decide(command: LedgerAuditCommand, state: LedgerAudit): LedgerAuditEvent[] {
  const differences = [...command.differences].sort((a, b) => a.deploymentId.localeCompare(b.deploymentId));
  if (isDeepStrictEqual(differences, state.differences)) return [];
  if (differences.length === 0) return [{ type: 'LedgerDriftCleared', data: { at: command.at } }];
  return [{ type: 'LedgerDriftFound', data: { at: command.at, differences } }];
}

export const ledgerAuditDecider: Decider<LedgerAuditCommand, LedgerAuditEvent, LedgerAudit> = { initialState, evolve, decide };

/** Whether the ledger counts less than the deployment can run on any resource: the difference that matters. */
export function undercounts(difference: LedgerDifference): boolean {
  const { ledger, deployment } = difference;
  if (!deployment) return false;
  if (!ledger) return deployment.replicas > 0;
  return (
    ledger.replicas < deployment.replicas ||
    ledger.cpuMillicores < deployment.cpuMillicores ||
    ledger.memoryBytes < deployment.memoryBytes ||
    ledger.gpus < deployment.gpus
  );
}

/** Whether two footprints hold the same resources. */
export function sameFootprint(a: Footprint | null, b: Footprint | null): boolean {
  const none = (f: Footprint | null) => !f || (f.replicas === 0 && f.gpus === 0 && f.cpuMillicores === 0 && f.memoryBytes === 0);
  if (none(a) || none(b)) return none(a) && none(b);
  return a!.replicas === b!.replicas && a!.cpuMillicores === b!.cpuMillicores && a!.memoryBytes === b!.memoryBytes && a!.gpus === b!.gpus;
}
