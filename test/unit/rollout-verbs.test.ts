// `sentinel rollout get`: the rollout status as a tree, and the verb on the program.
import { expect } from 'chai';
import { Command } from 'commander';
import { registerRolloutVerbs, rolloutTree, rolloutView, type RolloutView } from '../../app/cli/rollout-verbs.js';

const view: RolloutView = rolloutView.parse({
  deploymentId: 'd-1',
  revision: 2,
  stableRevision: 1,
  deploymentRevision: 2,
  status: 'Progressing',
  step: { current: 2, of: 3 },
  weight: { canary: 50, stable: 50 },
  replicas: { canary: 1, stable: 1 },
  waitingFor: 'analysis run r-1',
  steps: [
    { index: 1, step: 'setWeight 50', state: 'done' },
    { index: 2, step: 'analysis inference', state: 'current' },
    { index: 3, step: 'setWeight 100', state: 'pending' },
  ],
  analysisRuns: [
    {
      runId: 'r-1',
      step: 2,
      template: 'inference',
      verdict: 'running',
      reason: null,
      measurements: [
        { metric: 'latency-p99', outcome: 'successful', value: 0.99, message: 'ok', measuredAt: '2026-01-01T00:00:01.000Z' },
        { metric: 'tokens-per-second', outcome: 'inconclusive', value: null, baseline: 400, message: 'result is missing', measuredAt: '2026-01-01T00:00:01.000Z' },
      ],
    },
  ],
  cause: null,
  failedMeasurements: [],
  startedAt: '2026-01-01T00:00:00.000Z',
  endedAt: null,
});

describe('sentinel rollout get', () => {
  it('prints the status, the weights and each step with its analysis runs and their measurements as a tree', () => {
    expect(rolloutTree(view).split('\n')).to.deep.equal([
      'Name:            d-1',
      'Status:          ◌ Progressing',
      'Message:         waiting for analysis run r-1',
      'Strategy:        Canary',
      '  Step:          2/3',
      '  SetWeight:     50',
      'Revisions:       canary 2, stable 1',
      'Replicas:        canary 1, stable 1',
      '',
      'STEP',
      '├──✔ 1. setWeight 50',
      '├──◌ 2. analysis inference',
      '│   └──◌ AnalysisRun r-1 (inference): running',
      '│       ├──✔ 00:00:01 latency-p99 = 0.9900: successful',
      '│       └──? 00:00:01 tokens-per-second = none (stable 400): inconclusive',
      '└──  3. setWeight 100',
    ]);
  });

  it('says where an aborted rollout left the deployment', () => {
    const aborted = rolloutTree({ ...view, status: 'Aborted', waitingFor: null, cause: 'analysis run r-1 failed', deploymentRevision: 3 });
    expect(aborted).to.contain('Status:          ✖ Aborted');
    expect(aborted).to.contain('Cause:           analysis run r-1 failed');
    expect(aborted).to.contain('(the deployment is on revision 3)');
  });

  it('registers `rollout get <deployment>` with --watch', () => {
    const program = new Command();
    registerRolloutVerbs(program);
    const get = program.commands.find((c) => c.name() === 'rollout')?.commands.find((c) => c.name() === 'get');
    expect(get).to.not.equal(undefined);
    expect(get!.options.map((o) => o.long)).to.include.members(['--watch', '--url', '--output']);
  });
});
