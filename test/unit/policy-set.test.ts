import { expect } from 'chai';
import { fold, InvalidTransition, NotFound, RuleViolation, UnknownEvent } from '../../domain/decider.js';
import type { PolicyBody, PolicyPatchBody } from '../../domain/policy.js';
import {
  activePolicies,
  policySetDecider,
  policySetEvents,
  type PolicySetCommand,
  type PolicySetEvent,
} from '../../domain/policy-set.js';
import { given } from '../support/decider.js';

const capId = '0b4c1d1e-4444-4a4a-8a8a-000000000001';
const quotaId = '0b4c1d1e-4444-4a4a-8a8a-000000000002';
const freezeId = '0b4c1d1e-4444-4a4a-8a8a-000000000003';
const newId = '0b4c1d1e-4444-4a4a-8a8a-000000000004';

const cap: PolicyBody = {
  name: 'GPU cost cap',
  mode: 'enforce',
  priority: 100,
  selector: {},
  enabled: true,
  type: 'cost_ceiling',
  parameters: { maxHourlyUsd: 500 },
};
const quota: PolicyBody = {
  name: 'ml quota',
  description: 'GPUs for team ml',
  mode: 'dry_run',
  priority: 200,
  selector: { namespaces: ['ml'], workloadTypes: ['training'] },
  enabled: true,
  type: 'quota',
  parameters: { per: 'namespace', limits: { gpus: 8 } },
};
const freeze: PolicyBody = {
  name: 'year-end freeze',
  mode: 'enforce',
  priority: 100,
  selector: {},
  enabled: true,
  validFrom: '2026-12-20T00:00:00Z',
  validUntil: '2027-01-05T00:00:00Z',
  type: 'change_freeze',
  parameters: { windows: [{ start: '2026-12-24T00:00:00Z', end: '2026-12-27T00:00:00Z' }] },
};

const created = (policyId: string, policy: PolicyBody): PolicySetEvent => ({ type: 'PolicyCreated', data: { policyId, policy } });
const updated = (policyId: string, changes: Extract<PolicySetEvent, { type: 'PolicyUpdated' }>['data']['changes']): PolicySetEvent => ({
  type: 'PolicyUpdated',
  data: { policyId, changes },
});
const enabled = (policyId: string): PolicySetEvent => ({ type: 'PolicyEnabled', data: { policyId } });
const disabled = (policyId: string): PolicySetEvent => ({ type: 'PolicyDisabled', data: { policyId } });
const deleted = (policyId: string): PolicySetEvent => ({ type: 'PolicyDeleted', data: { policyId } });

const capCreated = created(capId, cap);
const quotaCreated = created(quotaId, quota);
const freezeCreated = created(freezeId, freeze);
const all = [capCreated, quotaCreated, freezeCreated];

const policies = (...past: PolicySetEvent[]) => given(policySetDecider, past);
const create = (policyId: string, policy: PolicyBody): PolicySetCommand => ({ type: 'CreatePolicy', policyId, policy });
const patch = (policyId: string, body: PolicyPatchBody): PolicySetCommand => ({ type: 'UpdatePolicy', policyId, patch: body });

/** The field paths a refused command names. */
const pathsOf = (past: PolicySetEvent[], command: PolicySetCommand): string[] => {
  try {
    policies(...past).when(command).events();
  } catch (error) {
    expect(error).to.be.instanceOf(RuleViolation);
    return (error as RuleViolation).errors.map((e) => e.path);
  }
  throw new Error('expected a RuleViolation');
};

describe('PolicySet decider', () => {
  describe('create', () => {
    it('given nothing, the set exists and is empty', () => {
      expect(policies().state).to.deep.equal({ policies: {}, deleted: [] });
    });
    it('given an empty set, when a policy is created, then PolicyCreated with the full policy, and the set holds it under its id', () => {
      policies().when(create(capId, cap)).then([capCreated]);
      expect(policies(capCreated).state.policies[capId]).to.deep.equal({ ...cap, id: capId });
    });
    it('given a set, when a policy with another name is created, then PolicyCreated', () => {
      policies(capCreated, quotaCreated).when(create(freezeId, freeze)).then([freezeCreated]);
    });
    it('given a policy, when another is created with its name, then RuleViolation on name', () => {
      expect(pathsOf([capCreated], create(newId, { ...quota, name: 'GPU cost cap' }))).to.deep.equal(['name']);
    });
    it('given a policy, when another is created with its name in other case, then RuleViolation on name', () => {
      policies(capCreated)
        .when(create(newId, { ...quota, name: 'gpu COST cap' }))
        .thenThrows(RuleViolation, /name: taken by policy 0b4c1d1e-4444-4a4a-8a8a-000000000001/);
    });
    it('given a disabled policy, when another is created with its name, then RuleViolation: a disabled policy keeps its name', () => {
      expect(pathsOf([capCreated, disabled(capId)], create(newId, { ...quota, name: cap.name }))).to.deep.equal(['name']);
    });
    it('given a policy, when created again with its id, then InvalidTransition', () => {
      policies(capCreated).when(create(capId, quota)).thenThrows(InvalidTransition, /already exists/);
    });
    it('given a deleted policy, when its id is used again, then InvalidTransition', () => {
      policies(capCreated, deleted(capId)).when(create(capId, quota)).thenThrows(InvalidTransition, /deleted.*not reused/);
    });
    it('given a deleted policy, when a new policy takes its name, then PolicyCreated: the name is free again', () => {
      policies(capCreated, deleted(capId)).when(create(newId, cap)).then([created(newId, cap)]);
    });
    it('given an empty set, when a policy whose validity window ends before it starts is created, then RuleViolation on validUntil', () => {
      expect(pathsOf([], create(freezeId, { ...freeze, validUntil: freeze.validFrom }))).to.deep.equal(['validUntil']);
    });
    it('records no undefined fields, so the event reads back the same from JSON', () => {
      const [event] = policies().when(create(capId, { ...cap, description: undefined, validFrom: undefined })).events();
      expect(event).to.deep.equal(capCreated);
      const policy = event?.type === 'PolicyCreated' ? event.data.policy : undefined;
      expect(policy).to.not.have.any.keys('description', 'validFrom');
    });
  });

  describe('update', () => {
    it('given a policy, when patched, then PolicyUpdated with only the fields that changed', () => {
      policies(...all)
        .when(patch(capId, { name: 'GPU cost cap', mode: 'audit', priority: 100, description: 'fleet-wide' }))
        .then([updated(capId, { mode: 'audit', description: 'fleet-wide' })]);
    });
    it('given an update, then the policy carries the new fields', () => {
      const { state } = policies(...all, updated(capId, { mode: 'audit', priority: 5 }));
      expect(state.policies[capId]).to.deep.equal({ ...cap, id: capId, mode: 'audit', priority: 5 });
    });
    it('given a policy, when its selector and parameters are sent unchanged (keys in another order), then nothing', () => {
      policies(...all)
        .when(patch(quotaId, { selector: { workloadTypes: ['training'], namespaces: ['ml'] }, parameters: { limits: { gpus: 8 }, per: 'namespace' } }))
        .then([]);
    });
    it('given a policy, when patched with the values it has, then nothing', () => {
      policies(...all)
        .when(patch(freezeId, { name: freeze.name, mode: 'enforce', validFrom: freeze.validFrom!, validUntil: freeze.validUntil!, enabled: true }))
        .then([]);
    });
    it('given a policy, when new parameters are sent, then they replace the old ones whole, with their defaults', () => {
      const events = policies(...all).when(patch(quotaId, { parameters: { limits: { replicas: 10 } } })).events();
      expect(events).to.deep.equal([updated(quotaId, { parameters: { per: 'namespace', limits: { replicas: 10 } } })]);
      const policy = policies(...all, ...events).state.policies[quotaId];
      expect(policy?.parameters).to.deep.equal({ per: 'namespace', limits: { replicas: 10 } });
    });
    it('given a policy, when the parameters break its type, then RuleViolation with paths under parameters', () => {
      expect(pathsOf(all, patch(capId, { parameters: { maxHourlyUsd: -1 } }))).to.deep.equal(['parameters.maxHourlyUsd']);
      expect(pathsOf(all, patch(quotaId, { parameters: { limits: { gpus: -1 } } }))).to.deep.equal(['parameters.limits.gpus']);
    });
    it("given a cost ceiling, when a quota's parameters are sent, then RuleViolation naming what its type accepts", () => {
      expect(pathsOf(all, patch(capId, { parameters: { limits: { gpus: 1 } } }))).to.have.members(['parameters.maxHourlyUsd', 'parameters']);
      policies(...all)
        .when(patch(capId, { parameters: { limits: { gpus: 1 } } }))
        .thenThrows(RuleViolation, /cannot update policy .*parameters\.maxHourlyUsd/);
    });
    it('given a window, when validFrom is null, then PolicyUpdated with validFrom null, and the policy has no validFrom', () => {
      policies(...all)
        .when(patch(freezeId, { validFrom: null }))
        .then([updated(freezeId, { validFrom: null })]);
      const policy = policies(...all, updated(freezeId, { validFrom: null })).state.policies[freezeId];
      expect(policy).to.not.have.property('validFrom');
      expect(policy).to.have.property('validUntil', freeze.validUntil);
    });
    it('given a window, when both bounds are null, then both are cleared', () => {
      const events = policies(...all).when(patch(freezeId, { validFrom: null, validUntil: null })).events();
      expect(events).to.deep.equal([updated(freezeId, { validFrom: null, validUntil: null })]);
      expect(policies(...all, ...events).state.policies[freezeId]).to.deep.equal({
        id: freezeId,
        name: freeze.name,
        mode: freeze.mode,
        priority: freeze.priority,
        selector: freeze.selector,
        enabled: true,
        type: freeze.type,
        parameters: freeze.parameters,
      });
    });
    it('given no window, when its bounds are null, then nothing: there is nothing to clear', () => {
      policies(...all)
        .when(patch(capId, { validFrom: null, validUntil: null }))
        .then([]);
    });
    it('given a window, when validFrom moves past validUntil, then RuleViolation on validUntil', () => {
      expect(pathsOf(all, patch(freezeId, { validFrom: '2027-02-01T00:00:00Z' }))).to.deep.equal(['validUntil']);
    });
    it('given a window, when validUntil moves to validFrom, then RuleViolation on validUntil', () => {
      policies(...all)
        .when(patch(freezeId, { validUntil: '2026-12-20T00:00:00Z' }))
        .thenThrows(RuleViolation, /validUntil: a date-time after validFrom/);
    });
    it('compares the window as instants, so a later clock time in an earlier offset is refused', () => {
      expect(pathsOf(all, patch(freezeId, { validUntil: '2026-12-20T00:30:00+01:00' }))).to.deep.equal(['validUntil']);
    });
    it('given a window, when validUntil is cleared and validFrom moves past the old end, then PolicyUpdated', () => {
      policies(...all)
        .when(patch(freezeId, { validFrom: '2027-02-01T00:00:00Z', validUntil: null }))
        .then([updated(freezeId, { validFrom: '2027-02-01T00:00:00Z', validUntil: null })]);
    });
    it('given no window, when only validUntil is set, then PolicyUpdated', () => {
      policies(...all)
        .when(patch(capId, { validUntil: '2027-01-01T00:00:00Z' }))
        .then([updated(capId, { validUntil: '2027-01-01T00:00:00Z' })]);
    });
    it("given two policies, when one is renamed onto the other's name in other case, then RuleViolation on name", () => {
      expect(pathsOf(all, patch(capId, { name: 'ML Quota' }))).to.deep.equal(['name']);
    });
    it('given a policy, when renamed to its own name in other case, then PolicyUpdated', () => {
      policies(...all)
        .when(patch(capId, { name: 'gpu cost cap' }))
        .then([updated(capId, { name: 'gpu cost cap' })]);
    });
    it('given a policy, when a patch breaks several rules, then one RuleViolation names every field', () => {
      expect(pathsOf(all, patch(freezeId, { name: 'ml quota', parameters: {}, validFrom: '2027-02-01T00:00:00Z' }))).to.have.members([
        'parameters',
        'name',
        'validUntil',
      ]);
    });
    it('given an enabled policy, when the patch disables it, then PolicyDisabled and no PolicyUpdated', () => {
      policies(...all)
        .when(patch(capId, { enabled: false }))
        .then([disabled(capId)]);
    });
    it('given an enabled policy, when the patch disables it and changes a field, then PolicyUpdated and PolicyDisabled', () => {
      policies(...all)
        .when(patch(capId, { enabled: false, priority: 1 }))
        .then([updated(capId, { priority: 1 }), disabled(capId)]);
    });
    it('given a disabled policy, when the patch enables it, then PolicyEnabled', () => {
      policies(...all, disabled(capId))
        .when(patch(capId, { enabled: true }))
        .then([enabled(capId)]);
    });
    it('given an enabled policy, when the patch enables it, then nothing', () => {
      policies(...all)
        .when(patch(capId, { enabled: true }))
        .then([]);
    });
    it('given no such policy, when patched, then NotFound', () => {
      policies(...all)
        .when(patch(newId, { priority: 1 }))
        .thenThrows(NotFound, /policy 0b4c1d1e-4444-4a4a-8a8a-000000000004 does not exist/);
    });
  });

  describe('enable and disable', () => {
    it('given an enabled policy, when disabled, then PolicyDisabled, and the policy is disabled', () => {
      policies(...all)
        .when({ type: 'DisablePolicy', policyId: capId })
        .then([disabled(capId)]);
      expect(policies(...all, disabled(capId)).state.policies[capId]?.enabled).to.equal(false);
    });
    it('given a disabled policy, when disabled, then nothing', () => {
      policies(...all, disabled(capId))
        .when({ type: 'DisablePolicy', policyId: capId })
        .then([]);
    });
    it('given a disabled policy, when enabled, then PolicyEnabled, and the policy is enabled', () => {
      policies(...all, disabled(capId))
        .when({ type: 'EnablePolicy', policyId: capId })
        .then([enabled(capId)]);
      expect(policies(...all, disabled(capId), enabled(capId)).state.policies[capId]?.enabled).to.equal(true);
    });
    it('given an enabled policy, when enabled, then nothing', () => {
      policies(...all)
        .when({ type: 'EnablePolicy', policyId: capId })
        .then([]);
    });
    it('given a policy created disabled, when enabled, then PolicyEnabled', () => {
      policies(created(newId, { ...cap, name: 'later', enabled: false }))
        .when({ type: 'EnablePolicy', policyId: newId })
        .then([enabled(newId)]);
    });
  });

  describe('delete', () => {
    it('given a policy, when deleted, then PolicyDeleted, and the policy is gone from the set', () => {
      policies(...all)
        .when({ type: 'DeletePolicy', policyId: quotaId })
        .then([deleted(quotaId)]);
      const { state } = policies(...all, deleted(quotaId));
      expect(Object.keys(state.policies)).to.have.members([capId, freezeId]);
      expect(state.deleted).to.deep.equal([quotaId]);
    });
    for (const command of [
      { type: 'UpdatePolicy', policyId: quotaId, patch: { priority: 1 } },
      { type: 'EnablePolicy', policyId: quotaId },
      { type: 'DisablePolicy', policyId: quotaId },
      { type: 'DeletePolicy', policyId: quotaId },
    ] as const) {
      it(`given no such policy, when ${command.type}, then NotFound`, () => {
        policies(capCreated).when(command).thenThrows(NotFound);
      });
      it(`given a deleted policy, when ${command.type}, then NotFound`, () => {
        policies(...all, deleted(quotaId)).when(command).thenThrows(NotFound);
      });
    }
  });

  describe('activePolicies', () => {
    const low = created(newId, { ...cap, name: 'low', priority: 10 });
    const idsAt = (past: PolicySetEvent[], at: string) => activePolicies(policies(...past).state, at).map((policy) => policy.id);

    it('lists enabled policies by priority, highest first, then by id', () => {
      expect(idsAt([low, ...all], '2026-12-25T00:00:00Z')).to.deep.equal([quotaId, capId, freezeId, newId]);
    });
    it('leaves out disabled policies', () => {
      expect(idsAt([low, ...all, disabled(quotaId), disabled(newId)], '2026-12-25T00:00:00Z')).to.deep.equal([capId, freezeId]);
    });
    it('leaves out deleted policies', () => {
      expect(idsAt([...all, deleted(capId)], '2026-12-25T00:00:00Z')).to.deep.equal([quotaId, freezeId]);
    });
    it('holds a policy from validFrom (inclusive) to validUntil (exclusive)', () => {
      expect(idsAt([freezeCreated], '2026-12-19T23:59:59.999Z')).to.deep.equal([]);
      expect(idsAt([freezeCreated], '2026-12-20T00:00:00Z')).to.deep.equal([freezeId]);
      expect(idsAt([freezeCreated], '2027-01-04T23:59:59.999Z')).to.deep.equal([freezeId]);
      expect(idsAt([freezeCreated], '2027-01-05T00:00:00Z')).to.deep.equal([]);
    });
    it('compares instants, not text: the same moment in another offset is the same edge', () => {
      expect(idsAt([freezeCreated], '2026-12-20T01:00:00+01:00')).to.deep.equal([freezeId]);
      expect(idsAt([freezeCreated], '2027-01-05T01:00:00+01:00')).to.deep.equal([]);
    });
    it('holds an open-ended window open on its open side', () => {
      const past = [...all, updated(freezeId, { validUntil: null })];
      expect(idsAt(past, '2099-01-01T00:00:00Z')).to.include(freezeId);
      expect(idsAt([...all, updated(freezeId, { validFrom: null })], '2000-01-01T00:00:00Z')).to.include(freezeId);
    });
    it('lists nothing for an empty set, and refuses a time that is not one', () => {
      expect(activePolicies(policies().state, '2026-12-25T00:00:00Z')).to.deep.equal([]);
      expect(() => activePolicies(policies(...all).state, 'tomorrow')).to.throw(RuleViolation, /at is not a date-time/);
    });
  });

  describe('events', () => {
    const labelled: [string, PolicySetEvent][] = [
      ['PolicyCreated of a cost ceiling', capCreated],
      ['PolicyCreated of a quota with a description and a selector', quotaCreated],
      ['PolicyCreated of a change freeze with a validity window', freezeCreated],
      [
        'PolicyUpdated with a cleared bound',
        updated(freezeId, { name: 'freeze', priority: 7, selector: { namespaces: ['prod'] }, validFrom: null, validUntil: '2027-02-01T00:00:00Z' }),
      ],
      ['PolicyUpdated with new parameters', updated(quotaId, { parameters: { per: 'team', limits: { gpus: 2 } }, description: 'smaller' })],
      ['PolicyDisabled', disabled(capId)],
      ['PolicyEnabled', enabled(capId)],
      ['PolicyDeleted', deleted(quotaId)],
    ];
    const samples = labelled.map(([, event]) => event);

    it('names its five event types, each at version 1', () => {
      expect(policySetEvents.types).to.have.members(['PolicyCreated', 'PolicyUpdated', 'PolicyEnabled', 'PolicyDisabled', 'PolicyDeleted']);
      for (const type of policySetEvents.types) expect(policySetEvents.version(type)).to.equal(1);
    });
    for (const [label, event] of labelled) {
      it(`parses its own ${label} as stored (through JSON)`, () => {
        const stored: unknown = JSON.parse(JSON.stringify(event.data));
        expect(policySetEvents.parse(event.type, 1, stored)).to.deep.equal(event);
      });
    }
    it('refuses an unknown version, an unknown type, and data that does not fit', () => {
      expect(() => policySetEvents.parse('PolicyCreated', 2, capCreated.data)).to.throw(UnknownEvent, /no schema version 2/);
      expect(() => policySetEvents.parse('PolicyExploded', 1, {})).to.throw(UnknownEvent, /unknown event type/);
      const { mode: _mode, ...modeless } = cap;
      expect(() => policySetEvents.parse('PolicyCreated', 1, { policyId: capId, policy: modeless })).to.throw(UnknownEvent, /does not match/);
      expect(() => policySetEvents.parse('PolicyUpdated', 1, { policyId: capId, changes: { type: 'quota' } })).to.throw(UnknownEvent);
    });
    it('folds the same state from events read back from JSON as from the events decided', () => {
      const replayed = samples.map((event) => policySetEvents.parse(event.type, 1, JSON.parse(JSON.stringify(event.data))));
      const state = fold(policySetDecider, samples);
      expect(fold(policySetDecider, replayed)).to.deep.equal(state);
      expect(JSON.parse(JSON.stringify(state))).to.deep.equal(state);
    });
  });
});
