// InfraMind's plan submissions: from the wire to `ActionPlanCommands.submit`, and back as one acknowledgement.
import { randomUUID } from 'node:crypto';
import { v5 as uuidv5 } from 'uuid';
import { z } from 'zod';
import type { PlanAck, PlanSubmission, ProtoPlanAction, Violation } from '../../adapters/grpc/inframind-proto.js';
import type { ActionPlanCommands } from '../../commands/action-plan-commands.js';
import { actionPlans } from '../../commands/aggregates.js';
import type { CommandContext, CommandHandler, WriteResult } from '../../commands/command-handler.js';
import type { Principal } from '../../domain/access.js';
import { actionPlanBody, type ActionPlanBody } from '../../domain/action-plan.js';
import { DomainError, PolicyViolation } from '../../domain/decider.js';
import type { Guardrails } from './guardrails.js';

/** Event ids of an InfraMind plan derive from its plan id in this namespace, so a resubmission appends nothing. */
const INFRAMIND_PLAN_NAMESPACE = '3c9a7e51-0f2d-5b84-a6c3-9e71d4b28f60';

const planId = z.uuid({ error: 'a UUID chosen by InfraMind for the plan' });
const nonce = z.string().min(1, 'a nonce, repeated in the acknowledgement').max(200, 'at most 200 characters');

/** The event ids a submission of `id` appends: the same on every resubmission. */
export function planEventIds(id: string): (index: number) => string {
  return (index) => uuidv5(`${id}\u0000${index}`, INFRAMIND_PLAN_NAMESPACE);
}

export class PlanIntake {
  constructor(
    private readonly plans: ActionPlanCommands,
    private readonly handler: CommandHandler,
    /** Without them, InfraMind's plans are judged by policy alone. */
    private readonly guardrails?: Guardrails,
  ) {}

  /**
   * Submits the plan with source `inframind` and answers its verdict. A submission that does not parse is
   * rejected with what is wrong and records nothing; one that parses is recorded and judged (a policy refusal is
   * recorded as a rejected plan), and a resubmission of a recorded plan id is answered from the record.
   */
  async submit(submission: PlanSubmission, submitter: Principal): Promise<PlanAck> {
    const parsed = parseSubmission(submission);
    if ('violations' in parsed) return rejected(submission, parsed.violations, '');
    const context: CommandContext = {
      actor: { id: submitter.id, kind: 'service' },
      correlationId: randomUUID(),
      causationId: parsed.planId,
      source: 'inframind',
      eventIds: planEventIds(parsed.planId),
    };
    // A plan id already recorded is answered from the record: the guardrails judged it when it was new.
    const known = (await this.handler.loadState(actionPlans, parsed.planId)).state.status !== 'absent';
    const refusals = known || !this.guardrails ? [] : this.guardrails.check(parsed.planId, submission.basedOnObservation, parsed.body.actions);
    let written: WriteResult;
    try {
      written = await this.plans.submit(parsed.planId, parsed.body, submitter, context, refusals);
    } catch (error) {
      if (error instanceof PolicyViolation && error.recordedIn) return this.verdict(submission, error.recordedIn.position ?? '');
      // Refused before anything was recorded: the plan id is taken by another submission, or a rule of the domain.
      if (error instanceof DomainError) return rejected(submission, violationsOf(error), '');
      throw error;
    }
    const ack = await this.verdict(submission, written.position ?? '');
    if (ack.verdict === 'ACCEPTED' && !parsed.body.shadow) this.guardrails?.hold(parsed.planId, parsed.body.actions);
    return ack;
  }

  /** The verdict recorded for the plan: rejected with its violations, or accepted. */
  private async verdict(submission: PlanSubmission, position: string): Promise<PlanAck> {
    const { state } = await this.handler.loadState(actionPlans, submission.planId);
    if (state.status === 'Rejected') return rejected(submission, (state.violations ?? []).map(toWire), position);
    return { nonce: submission.nonce, planId: submission.planId, verdict: 'ACCEPTED', violations: [], position };
  }
}

type Parsed = { planId: string; body: ActionPlanBody } | { violations: Violation[] };

function parseSubmission(submission: PlanSubmission): Parsed {
  const violations: Violation[] = [];
  const id = planId.safeParse(submission.planId);
  if (!id.success) violations.push(...issues(id.error, 'planId'));
  const nonceOk = nonce.safeParse(submission.nonce);
  if (!nonceOk.success) violations.push(...issues(nonceOk.error, 'nonce'));
  const body = actionPlanBody.safeParse({
    source: 'inframind',
    reason: submission.reason,
    actions: submission.actions.map(fromWire),
    ...(submission.ttlSeconds > 0 ? { ttlSeconds: submission.ttlSeconds } : {}),
    shadow: submission.shadow,
  });
  if (!body.success) violations.push(...issues(body.error));
  if (violations.length > 0 || !id.success || !body.success) return { violations };
  return { planId: id.data, body: body.data };
}

/** A wire action as the plan body names it; zero and empty fields mean "not given", as proto3 has no absence. */
function fromWire(action: ProtoPlanAction): unknown {
  switch (action.kind) {
    case 'scale':
      return { kind: 'scale', ...action.scale };
    case 'reschedule': {
      const { deploymentId, clusterId, nodeSelector } = action.reschedule;
      return {
        kind: 'reschedule',
        deploymentId,
        ...(clusterId ? { clusterId } : {}),
        ...(Object.keys(nodeSelector).length > 0 ? { nodeSelector } : {}),
      };
    }
    case 'rollback':
      return { kind: 'rollback', deploymentId: action.rollback.deploymentId, ...(action.rollback.toRevision > 0 ? { toRevision: action.rollback.toRevision } : {}) };
    case 'restart':
      return { kind: 'restart', ...action.restart };
    case 'drain':
      return { kind: 'drain', ...action.drain };
    case 'update':
      return { kind: 'update', deploymentId: action.update.deploymentId, ...(action.update.workloadRevision > 0 ? { workloadRevision: action.update.workloadRevision } : {}) };
    default:
      // An action with no member of the oneof set: the body's schema names the kinds it accepts.
      return {};
  }
}

function issues(error: z.ZodError, prefix?: string): Violation[] {
  return error.issues.map((issue) => ({ path: [prefix, ...issue.path].filter((part) => part !== undefined).join('.'), message: issue.message }));
}

function violationsOf(error: DomainError): Violation[] {
  const fields = 'errors' in error && Array.isArray(error.errors) ? (error.errors as { path: string; message: string }[]) : [];
  return fields.length > 0 ? fields.map((field) => ({ path: field.path, message: `${error.message}: ${field.message}` })) : [{ path: 'planId', message: error.message }];
}

function toWire(violation: { path?: string; message: string }): Violation {
  return { path: violation.path ?? '', message: violation.message };
}

function rejected(submission: PlanSubmission, violations: Violation[], position: string): PlanAck {
  return { nonce: submission.nonce, planId: submission.planId, verdict: 'REJECTED', violations, position };
}
