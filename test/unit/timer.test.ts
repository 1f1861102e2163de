// The durable timer as a decider: given / when / then for scheduling, firing and cancelling, and its catalogue.
import { expect } from 'chai';
import { fold, InvalidTransition, NotFound, RuleViolation, UnknownEvent } from '../../domain/decider.js';
import { timerDecider, timerEvents, type TimerCommand, type TimerEvent } from '../../domain/timer.js';
import { given } from '../support/decider.js';

const timerId = 'plan-0b4c1d1e-2222-4a4a-8a8a-000000000001-expiry';
const owner = 'plan-expiry';
const payload = { planId: '0b4c1d1e-2222-4a4a-8a8a-000000000001' };
const scheduledAt = '2026-03-01T12:00:00.000Z';
const dueAt = '2026-03-01T13:00:00.000Z';
const beforeDue = '2026-03-01T12:59:59.999Z';
const afterDue = '2026-03-01T13:00:02.000Z';

const schedule: TimerCommand = { type: 'ScheduleTimer', timerId, owner, dueAt, payload, at: scheduledAt };
const scheduled: TimerEvent = { type: 'TimerScheduled', data: { timerId, owner, dueAt, payload, scheduledAt } };
const fired: TimerEvent = { type: 'TimerFired', data: { timerId, firedAt: afterDue } };
const cancelled: TimerEvent = { type: 'TimerCancelled', data: { timerId, cancelledAt: beforeDue, reason: 'plan completed' } };

describe('timer decider', () => {
  describe('scheduling', () => {
    it('given no timer, when one is scheduled, then it is scheduled with its owner, due time and payload', () => {
      given(timerDecider).when(schedule).then([scheduled]);
    });

    it('given no timer, when one is scheduled for a time already past, then it is scheduled (it fires at once)', () => {
      given(timerDecider)
        .when({ ...schedule, dueAt: '2026-03-01T11:00:00.000Z' })
        .then([{ type: 'TimerScheduled', data: { ...scheduled.data, dueAt: '2026-03-01T11:00:00.000Z' } }]);
    });

    it('given a scheduled timer, when the same timer is scheduled again later, then nothing is recorded (a replayed reaction)', () => {
      given(timerDecider, [scheduled]).when({ ...schedule, at: beforeDue }).then([]);
    });

    it('given a timer that fired, when the same timer is scheduled again, then nothing is recorded: it does not fire twice', () => {
      given(timerDecider, [scheduled, fired]).when(schedule).then([]);
    });

    it('given a scheduled timer, when it is scheduled for another time, then it is refused: a timer is never moved', () => {
      given(timerDecider, [scheduled])
        .when({ ...schedule, dueAt: afterDue })
        .thenThrows(InvalidTransition, /is Scheduled: cannot schedule \(it was scheduled by plan-expiry for 2026-03-01T13:00:00.000Z; a timer is never moved/);
    });

    it('given a scheduled timer, when another owner or payload uses its id, then it is refused', () => {
      given(timerDecider, [scheduled]).when({ ...schedule, owner: 'rollouts' }).thenThrows(InvalidTransition);
      given(timerDecider, [scheduled]).when({ ...schedule, payload: { planId: 'another' } }).thenThrows(InvalidTransition);
    });

    it('when the due time, the time, the id or the owner is malformed, then it is refused naming the field', () => {
      const refusal = (command: TimerCommand) => {
        try {
          timerDecider.decide(command, timerDecider.initialState);
        } catch (error) {
          if (error instanceof RuleViolation) return error.errors.map((e) => e.path);
        }
        throw new Error('expected a RuleViolation');
      };
      expect(refusal({ ...schedule, dueAt: 'tomorrow' })).to.deep.equal(['dueAt']);
      expect(refusal({ ...schedule, at: '2026-03-01' })).to.deep.equal(['at']);
      expect(refusal({ ...schedule, timerId: 'no spaces' })).to.deep.equal(['timerId']);
      expect(refusal({ ...schedule, owner: 'Plans' })).to.deep.equal(['owner']);
    });
  });

  describe('firing', () => {
    it('given a scheduled timer, when it is fired at its due time, then it fired then', () => {
      given(timerDecider, [scheduled]).when({ type: 'FireTimer', timerId, at: dueAt }).then([{ type: 'TimerFired', data: { timerId, firedAt: dueAt } }]);
    });

    it('given a scheduled timer, when it is fired late (after a downtime), then it fired when it was fired', () => {
      given(timerDecider, [scheduled]).when({ type: 'FireTimer', timerId, at: afterDue }).then([fired]);
    });

    it('given a scheduled timer, when it is fired before its due time, then it is refused', () => {
      given(timerDecider, [scheduled]).when({ type: 'FireTimer', timerId, at: beforeDue }).thenThrows(RuleViolation, /not due until 2026-03-01T13:00:00.000Z/);
    });

    it('given a timer that fired, when it is fired again (another instance), then nothing is recorded', () => {
      given(timerDecider, [scheduled, fired]).when({ type: 'FireTimer', timerId, at: afterDue }).then([]);
    });

    it('given a cancelled timer, when it falls due and is fired, then nothing is recorded: the cancel came first', () => {
      given(timerDecider, [scheduled, cancelled]).when({ type: 'FireTimer', timerId, at: afterDue }).then([]);
    });

    it('given no timer, when one is fired, then it is not found', () => {
      given(timerDecider).when({ type: 'FireTimer', timerId, at: afterDue }).thenThrows(NotFound, /timer .* does not exist/);
    });
  });

  describe('cancelling', () => {
    const cancel: TimerCommand = { type: 'CancelTimer', timerId, owner, at: beforeDue, reason: 'plan completed' };

    it('given a scheduled timer, when its owner cancels it, then it is cancelled with the reason', () => {
      given(timerDecider, [scheduled]).when(cancel).then([cancelled]);
    });

    it('given a cancelled timer, when it is cancelled again, then nothing is recorded', () => {
      given(timerDecider, [scheduled, cancelled]).when(cancel).then([]);
    });

    it('given a timer that fired, when it is cancelled, then it is refused: the firing came first', () => {
      given(timerDecider, [scheduled, fired]).when(cancel).thenThrows(InvalidTransition, /is Fired: cannot cancel \(it fired at 2026-03-01T13:00:02.000Z\)/);
    });

    it('given a scheduled timer, when another owner cancels it, then it is refused', () => {
      given(timerDecider, [scheduled]).when({ ...cancel, owner: 'rollouts' }).thenThrows(RuleViolation, /belongs to plan-expiry, not to rollouts/);
    });

    it('given no timer, when one is cancelled, then it is not found', () => {
      given(timerDecider).when(cancel).thenThrows(NotFound);
    });
  });

  it('folds a timer through its life', () => {
    expect(fold(timerDecider, [scheduled])).to.deep.equal({ status: 'Scheduled', ...scheduled.data });
    expect(fold(timerDecider, [scheduled, fired])).to.deep.equal({ status: 'Fired', ...scheduled.data, firedAt: afterDue });
    expect(fold(timerDecider, [scheduled, cancelled])).to.deep.equal({ status: 'Cancelled', ...scheduled.data, cancelledAt: beforeDue, reason: 'plan completed' });
  });

  it('reads its events back through the catalogue, and refuses what the schema does not hold', () => {
    for (const event of [scheduled, fired, cancelled]) expect(timerEvents.parse(event.type, 1, event.data)).to.deep.equal(event);
    expect(() => timerEvents.parse('TimerScheduled', 1, { ...scheduled.data, dueAt: 'soon' })).to.throw(UnknownEvent, /dueAt/);
  });
});
