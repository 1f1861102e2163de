// The autonomy kill switch as a decider: given / when / then, and what its bodies accept.
import { expect } from 'chai';
import { autonomyDecider, autonomyEvents, pauseBody, pausedRefusal, resumeBody, type AutonomyEvent } from '../../domain/autonomy.js';
import { fold } from '../../domain/decider.js';
import { given } from '../support/decider.js';

const admin = { id: 'admin-1', kind: 'user' } as const;
const at = '2026-03-01T12:00:00.000Z';
const later = '2026-03-01T13:00:00.000Z';
const paused: AutonomyEvent = { type: 'AutonomyPaused', data: { actor: admin, reason: 'bad forecasts', at } };

describe('autonomy decider', () => {
  it('given autonomy runs, when an admin pauses it, then it is paused with who, when and why', () => {
    given(autonomyDecider).when({ type: 'PauseAutonomy', actor: admin, reason: 'bad forecasts', at }).then([paused]);
  });

  it('given autonomy is paused, when it is paused again, then nothing is recorded', () => {
    given(autonomyDecider, [paused]).when({ type: 'PauseAutonomy', actor: admin, reason: 'again', at: later }).then([]);
  });

  it('given autonomy is paused, when an admin resumes it, then it runs again', () => {
    given(autonomyDecider, [paused])
      .when({ type: 'ResumeAutonomy', actor: admin, reason: 'fixed', at: later })
      .then([{ type: 'AutonomyResumed', data: { actor: admin, reason: 'fixed', at: later } }]);
  });

  it('given autonomy runs, when it is resumed, then nothing is recorded', () => {
    given(autonomyDecider).when({ type: 'ResumeAutonomy', actor: admin, at: later }).then([]);
  });

  it('folds pause and resume into the state a plan submission reads', () => {
    expect(fold(autonomyDecider, [paused])).to.deep.equal({ paused: true, since: at, by: admin, reason: 'bad forecasts' });
    expect(fold(autonomyDecider, [paused, { type: 'AutonomyResumed', data: { actor: admin, at: later } }])).to.deep.equal({ paused: false });
  });

  it('names who paused, since when and why in the refusal of a plan', () => {
    const state = fold(autonomyDecider, [paused]);
    if (!state.paused) throw new Error('expected a paused state');
    const refusal = pausedRefusal(state);
    expect(refusal.path).to.equal('source');
    expect(refusal.message).to.contain(at).and.contain('admin-1').and.contain('bad forecasts').and.contain('until an admin resumes it');
  });

  it('reads its events back through the catalogue', () => {
    expect(autonomyEvents.parse('AutonomyPaused', 1, paused.data)).to.deep.equal(paused);
  });
});

describe('autonomy bodies', () => {
  it('a pause needs a reason; unknown fields are refused', () => {
    expect(pauseBody.safeParse({ reason: 'stop' }).success).to.equal(true);
    expect(pauseBody.safeParse({}).success).to.equal(false);
    expect(pauseBody.safeParse({ reason: 'stop', force: true }).success).to.equal(false);
  });

  it('a resume may say why', () => {
    expect(resumeBody.safeParse({}).success).to.equal(true);
    expect(resumeBody.safeParse({ reason: '' }).success).to.equal(false);
  });
});
