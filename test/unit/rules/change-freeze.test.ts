import { expect } from 'chai';
import { ACTION_KINDS, NO_USAGE, type Change, type ParametersOf, type PolicyInputs, type RecurringWindow } from '../../../domain/policy.js';
import { activeFreezeWindow, changeFreeze } from '../../../domain/rules/change-freeze.js';

type Freeze = ParametersOf<'change_freeze'>;

const change = (at: string, overrides: Partial<Change> = {}): Change => ({
  action: 'update',
  at,
  actor: { id: 'alice', kind: 'user' },
  target: { kind: 'deployment', id: 'dep-a' },
  clusterId: 'gpu-east',
  labels: {},
  ...overrides,
});

const inputs: PolicyInputs = {
  usage: { namespace: NO_USAGE, team: NO_USAGE, cluster: NO_USAGE },
  cost: { fleetHourlyUsd: 0, teamHourlyUsd: 0, targetHourlyUsdBefore: 0, targetHourlyUsdAfter: 0, teamMonthToDateUsd: 0, hoursLeftInMonth: 0 },
  history: [],
};

const judge = (parameters: Freeze, at: string, overrides: Partial<Change> = {}) => changeFreeze(parameters, change(at, overrides), inputs);
const frozen = (parameters: Freeze, at: string) => judge(parameters, at).outcome === 'fail';
const weekly = (window: RecurringWindow): Freeze => ({ recurring: [window] });

describe('change_freeze rule', () => {
  describe('one-off windows', () => {
    const holidays: Freeze = { windows: [{ start: '2026-12-20T00:00:00Z', end: '2027-01-04T00:00:00Z' }] };

    it('given a holiday freeze, when a change comes inside it, then fail naming the window', () => {
      expect(judge(holidays, '2026-12-24T10:00:00Z')).to.deep.equal({
        outcome: 'fail',
        message: 'changes are frozen during the freeze from 2026-12-20T00:00:00Z to 2027-01-04T00:00:00Z',
      });
    });

    it('given a holiday freeze, when a change comes outside it, then pass', () => {
      expect(judge(holidays, '2027-02-01T10:00:00Z')).to.deep.equal({ outcome: 'pass', message: 'no change freeze at 2027-02-01T10:00:00Z' });
    });

    it('given a holiday freeze, when a change comes at its start, then fail; just before, then pass', () => {
      expect(frozen(holidays, '2026-12-20T00:00:00Z')).to.equal(true);
      expect(frozen(holidays, '2026-12-19T23:59:59.999Z')).to.equal(false);
    });

    it('given a holiday freeze, when a change comes at its end, then pass; just before, then fail', () => {
      expect(frozen(holidays, '2027-01-04T00:00:00Z')).to.equal(false);
      expect(frozen(holidays, '2027-01-03T23:59:59.999Z')).to.equal(true);
    });

    it('given a window written with an offset, when judged, then absolute time is compared', () => {
      const launch: Freeze = { windows: [{ start: '2026-06-01T09:00:00+02:00', end: '2026-06-01T12:00:00+02:00' }] };
      expect(frozen(launch, '2026-06-01T07:00:00Z')).to.equal(true);
      expect(frozen(launch, '2026-06-01T10:00:00Z')).to.equal(false);
      expect(frozen(launch, '2026-06-01T09:30:00-01:00')).to.equal(false);
      expect(frozen(launch, '2026-06-01T08:30:00-01:00')).to.equal(true);
    });
  });

  describe('recurring windows', () => {
    it('given business hours on Monday and Wednesday, when judged, then only those days and hours are frozen', () => {
      const freeze = weekly({ timeZone: 'UTC', days: ['mon', 'wed'], start: '09:00', end: '17:00' });
      expect(frozen(freeze, '2026-03-09T10:00:00Z'), 'Monday 10:00').to.equal(true);
      expect(frozen(freeze, '2026-03-09T09:00:00Z'), 'Monday 09:00').to.equal(true);
      expect(frozen(freeze, '2026-03-09T08:59:59Z'), 'Monday 08:59:59').to.equal(false);
      expect(frozen(freeze, '2026-03-09T16:59:59Z'), 'Monday 16:59:59').to.equal(true);
      expect(frozen(freeze, '2026-03-09T17:00:00Z'), 'Monday 17:00').to.equal(false);
      expect(frozen(freeze, '2026-03-10T10:00:00Z'), 'Tuesday 10:00').to.equal(false);
      expect(frozen(freeze, '2026-03-11T10:00:00Z'), 'Wednesday 10:00').to.equal(true);
    });

    it('given a recurring window, when frozen, then the message names the window and the local time', () => {
      const freeze = weekly({ timeZone: 'Europe/Berlin', days: ['fri'], start: '22:00', end: '06:00' });
      expect(judge(freeze, '2026-03-07T02:00:00Z')).to.deep.equal({
        outcome: 'fail',
        message: 'changes are frozen during the weekly freeze fri 22:00–06:00 Europe/Berlin (now sat 03:00 there)',
      });
    });

    it('given Friday 22:00–06:00 in Berlin, when judged, then Friday night and Saturday morning are frozen', () => {
      const freeze = weekly({ timeZone: 'Europe/Berlin', days: ['fri'], start: '22:00', end: '06:00' });
      // Winter: Berlin is UTC+1.
      expect(frozen(freeze, '2026-03-06T20:59:00Z'), 'Friday 21:59').to.equal(false);
      expect(frozen(freeze, '2026-03-06T21:00:00Z'), 'Friday 22:00').to.equal(true);
      expect(frozen(freeze, '2026-03-06T23:30:00Z'), 'Saturday 00:30').to.equal(true);
      expect(frozen(freeze, '2026-03-07T04:59:00Z'), 'Saturday 05:59').to.equal(true);
      expect(frozen(freeze, '2026-03-07T05:00:00Z'), 'Saturday 06:00').to.equal(false);
      expect(frozen(freeze, '2026-03-07T21:30:00Z'), 'Saturday 22:30').to.equal(false);
      expect(frozen(freeze, '2026-03-06T02:00:00Z'), 'Friday 03:00 (the morning after Thursday)').to.equal(false);
    });

    it('given Sunday 20:00–08:00, when judged, then the night runs into Monday', () => {
      const freeze = weekly({ timeZone: 'UTC', days: ['sun'], start: '20:00', end: '08:00' });
      expect(frozen(freeze, '2026-03-08T19:59:00Z'), 'Sunday 19:59').to.equal(false);
      expect(frozen(freeze, '2026-03-08T23:00:00Z'), 'Sunday 23:00').to.equal(true);
      expect(frozen(freeze, '2026-03-09T00:00:00Z'), 'Monday 00:00').to.equal(true);
      expect(frozen(freeze, '2026-03-09T07:59:00Z'), 'Monday 07:59').to.equal(true);
      expect(frozen(freeze, '2026-03-09T08:00:00Z'), 'Monday 08:00').to.equal(false);
      expect(frozen(freeze, '2026-03-08T03:00:00Z'), 'Sunday 03:00 (the morning after Saturday)').to.equal(false);
    });

    it('given an end of 24:00, when judged, then the window runs to midnight and no further', () => {
      const freeze = weekly({ timeZone: 'UTC', days: ['fri'], start: '18:00', end: '24:00' });
      expect(frozen(freeze, '2026-03-06T23:59:59Z'), 'Friday 23:59:59').to.equal(true);
      expect(frozen(freeze, '2026-03-07T00:00:00Z'), 'Saturday 00:00').to.equal(false);
      expect(frozen(freeze, '2026-03-06T17:59:00Z'), 'Friday 17:59').to.equal(false);
    });

    it('given weekends 00:00–24:00, when judged, then all of Saturday and Sunday are frozen', () => {
      const freeze = weekly({ timeZone: 'UTC', days: ['sat', 'sun'], start: '00:00', end: '24:00' });
      expect(frozen(freeze, '2026-03-06T23:59:59Z'), 'Friday 23:59:59').to.equal(false);
      expect(frozen(freeze, '2026-03-07T00:00:00Z'), 'Saturday 00:00').to.equal(true);
      expect(frozen(freeze, '2026-03-08T12:00:00Z'), 'Sunday 12:00').to.equal(true);
      expect(frozen(freeze, '2026-03-08T23:59:59Z'), 'Sunday 23:59:59').to.equal(true);
      expect(frozen(freeze, '2026-03-09T00:00:00Z'), 'Monday 00:00').to.equal(false);
    });

    it('given 00:00–00:00, when judged, then the whole listed day is frozen and nothing more', () => {
      const freeze = weekly({ timeZone: 'UTC', days: ['wed'], start: '00:00', end: '00:00' });
      expect(frozen(freeze, '2026-03-11T00:00:00Z'), 'Wednesday 00:00').to.equal(true);
      expect(frozen(freeze, '2026-03-11T23:59:00Z'), 'Wednesday 23:59').to.equal(true);
      expect(frozen(freeze, '2026-03-12T00:00:00Z'), 'Thursday 00:00').to.equal(false);
    });

    it('given a window in Tokyo, when judged, then the local day decides, not the UTC one', () => {
      const freeze = weekly({ timeZone: 'Asia/Tokyo', days: ['mon'], start: '00:00', end: '12:00' });
      // Sunday 20:00 UTC is Monday 05:00 in Tokyo.
      expect(frozen(freeze, '2026-03-08T20:00:00Z')).to.equal(true);
      expect(frozen(freeze, '2026-03-09T05:00:00Z')).to.equal(false);
    });
  });

  describe('daylight saving time', () => {
    it('given daily 09:00–17:00 in Berlin, when the clocks spring forward (29 March 2026), then 09:00 local moves by an hour in UTC', () => {
      const freeze = weekly({ timeZone: 'Europe/Berlin', days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '09:00', end: '17:00' });
      expect(frozen(freeze, '2026-03-28T07:59:00Z'), 'Saturday 08:59 CET').to.equal(false);
      expect(frozen(freeze, '2026-03-28T08:00:00Z'), 'Saturday 09:00 CET').to.equal(true);
      expect(frozen(freeze, '2026-03-29T06:59:00Z'), 'Sunday 08:59 CEST').to.equal(false);
      expect(frozen(freeze, '2026-03-29T07:00:00Z'), 'Sunday 09:00 CEST').to.equal(true);
      expect(frozen(freeze, '2026-03-29T15:00:00Z'), 'Sunday 17:00 CEST').to.equal(false);
    });

    it('given Sunday 01:00–04:00 in Berlin, when the clocks spring forward inside it, then it lasts two real hours', () => {
      const freeze = weekly({ timeZone: 'Europe/Berlin', days: ['sun'], start: '01:00', end: '04:00' });
      expect(frozen(freeze, '2026-03-28T23:59:00Z'), '00:59 CET').to.equal(false);
      expect(frozen(freeze, '2026-03-29T00:00:00Z'), '01:00 CET').to.equal(true);
      expect(frozen(freeze, '2026-03-29T01:30:00Z'), '03:30 CEST').to.equal(true);
      expect(frozen(freeze, '2026-03-29T02:00:00Z'), '04:00 CEST').to.equal(false);
    });

    it('given Sunday 02:00–03:00 in Berlin, when the clocks fall back (25 October 2026), then both 02:xx hours are frozen', () => {
      const freeze = weekly({ timeZone: 'Europe/Berlin', days: ['sun'], start: '02:00', end: '03:00' });
      expect(frozen(freeze, '2026-10-24T23:59:00Z'), '01:59 CEST').to.equal(false);
      expect(frozen(freeze, '2026-10-25T00:30:00Z'), '02:30 CEST').to.equal(true);
      expect(frozen(freeze, '2026-10-25T01:30:00Z'), '02:30 CET').to.equal(true);
      expect(frozen(freeze, '2026-10-25T02:00:00Z'), '03:00 CET').to.equal(false);
    });

    it('given weekdays 09:00–17:00 in New York, when judged either side of 8 March 2026, then both offsets are right', () => {
      const freeze = weekly({ timeZone: 'America/New_York', days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '17:00' });
      expect(frozen(freeze, '2026-03-06T14:00:00Z'), 'Friday 09:00 EST').to.equal(true);
      expect(frozen(freeze, '2026-03-06T13:59:00Z'), 'Friday 08:59 EST').to.equal(false);
      expect(frozen(freeze, '2026-03-09T13:00:00Z'), 'Monday 09:00 EDT').to.equal(true);
      expect(frozen(freeze, '2026-03-09T12:59:00Z'), 'Monday 08:59 EDT').to.equal(false);
      expect(frozen(freeze, '2026-03-09T21:00:00Z'), 'Monday 17:00 EDT').to.equal(false);
    });

    it('given Saturday 22:00–06:00 in New York, when the clocks spring forward overnight, then it ends at 06:00 EDT', () => {
      const freeze = weekly({ timeZone: 'America/New_York', days: ['sat'], start: '22:00', end: '06:00' });
      expect(frozen(freeze, '2026-03-08T02:59:00Z'), 'Saturday 21:59 EST').to.equal(false);
      expect(frozen(freeze, '2026-03-08T03:00:00Z'), 'Saturday 22:00 EST').to.equal(true);
      expect(frozen(freeze, '2026-03-08T09:59:00Z'), 'Sunday 05:59 EDT').to.equal(true);
      expect(frozen(freeze, '2026-03-08T10:00:00Z'), 'Sunday 06:00 EDT').to.equal(false);
    });

    it('given Sunday 01:00–02:00 in New York, when the clocks fall back (1 November 2026), then both 01:xx hours are frozen', () => {
      const freeze = weekly({ timeZone: 'America/New_York', days: ['sun'], start: '01:00', end: '02:00' });
      expect(frozen(freeze, '2026-11-01T05:30:00Z'), '01:30 EDT').to.equal(true);
      expect(frozen(freeze, '2026-11-01T06:30:00Z'), '01:30 EST').to.equal(true);
      expect(frozen(freeze, '2026-11-01T07:00:00Z'), '02:00 EST').to.equal(false);
    });
  });

  describe('break glass', () => {
    const freeze = weekly({ timeZone: 'UTC', days: ['sat', 'sun'], start: '00:00', end: '24:00' });
    const emergency = { emergency: { justification: 'INC-42: model server leaking memory' } };

    it('given a freeze, when an emergency change comes inside it, then pass with breakGlass naming window and justification', () => {
      expect(judge(freeze, '2026-03-07T12:00:00Z', emergency)).to.deep.equal({
        outcome: 'pass',
        breakGlass: true,
        message: 'break glass during the weekly freeze sat, sun 00:00–24:00 UTC (now sat 12:00 there): INC-42: model server leaking memory',
      });
    });

    it('given a freeze, when an ordinary change comes inside it, then fail without breakGlass', () => {
      const result = judge(freeze, '2026-03-07T12:00:00Z');
      expect(result.outcome).to.equal('fail');
      expect(result).not.to.have.property('breakGlass');
    });

    it('given a freeze, when an emergency change comes outside it, then pass without breakGlass', () => {
      expect(judge(freeze, '2026-03-09T12:00:00Z', emergency)).to.deep.equal({ outcome: 'pass', message: 'no change freeze at 2026-03-09T12:00:00Z' });
    });
  });

  describe('several windows', () => {
    const freeze: Freeze = {
      windows: [{ start: '2026-12-20T00:00:00Z', end: '2027-01-04T00:00:00Z' }],
      recurring: [
        { timeZone: 'Asia/Tokyo', days: ['mon'], start: '00:00', end: '06:00' },
        { timeZone: 'UTC', days: ['fri'], start: '16:00', end: '24:00' },
        { timeZone: 'UTC', days: ['sat'], start: '00:00', end: '24:00' },
      ],
    };

    it('given several windows, when a change falls in any of them, then fail naming that one', () => {
      expect(judge(freeze, '2026-12-22T12:00:00Z').message).to.contain('the freeze from 2026-12-20T00:00:00Z');
      expect(judge(freeze, '2026-03-08T16:00:00Z').message).to.contain('mon 00:00–06:00 Asia/Tokyo (now mon 01:00 there)');
      expect(judge(freeze, '2026-03-06T17:00:00Z').message).to.contain('fri 16:00–24:00 UTC');
      expect(judge(freeze, '2026-03-07T17:00:00Z').message).to.contain('sat 00:00–24:00 UTC');
    });

    it('given several windows, when a change falls in none, then pass', () => {
      expect(frozen(freeze, '2026-03-10T12:00:00Z')).to.equal(false);
      expect(frozen(freeze, '2026-03-06T15:59:00Z')).to.equal(false);
    });
  });

  it('given a freeze, when any kind of change comes inside it, then fail', () => {
    const freeze: Freeze = { windows: [{ start: '2026-12-20T00:00:00Z', end: '2027-01-04T00:00:00Z' }] };
    for (const action of ACTION_KINDS) expect(judge(freeze, '2026-12-24T00:00:00Z', { action }).outcome, action).to.equal('fail');
  });

  it('given a change time that is not a date-time, when judged, then fail saying so', () => {
    expect(judge({ windows: [{ start: '2026-12-20T00:00:00Z', end: '2027-01-04T00:00:00Z' }], recurring: [] }, 'noon')).to.deep.equal({
      outcome: 'fail',
      message: `the change's time "noon" is not an ISO date-time`,
    });
  });

  describe('activeFreezeWindow', () => {
    const freeze = weekly({ timeZone: 'UTC', days: ['sat'], start: '00:00', end: '24:00' });

    it('given a time inside a window, then it describes the window', () => {
      expect(activeFreezeWindow(freeze, new Date('2026-03-07T08:15:00Z'))).to.equal('the weekly freeze sat 00:00–24:00 UTC (now sat 08:15 there)');
    });

    it('given a time outside every window, then undefined', () => {
      expect(activeFreezeWindow(freeze, new Date('2026-03-06T08:15:00Z'))).to.equal(undefined);
    });
  });
});
