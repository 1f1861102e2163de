import { expect } from 'chai';
import { fold, InvalidTransition, NotFound, UnknownEvent } from '../../domain/decider.js';
import {
  gpuRequest,
  specAt,
  workloadBody,
  workloadDecider,
  workloadEvents,
  workloadPatchBody,
  workloadRetireBody,
  type WorkloadCommand,
  type WorkloadEvent,
  type WorkloadSpec,
} from '../../domain/workload.js';
import { given } from '../support/decider.js';

const workloadId = '0b4c1d1e-2222-4a4a-8a8a-000000000001';
const spec: WorkloadSpec = {
  name: 'llm-serve',
  namespace: 'ml-prod',
  type: 'inference',
  image: 'ghcr.io/acme/llm:1.2',
  args: ['--port', '8080'],
  env: { MODEL_PATH: '/models/llm' },
  resources: { cpu: '4', memory: '16Gi', gpu: { count: 1, sku: 'nvidia-a100-80gb' } },
  labels: { team: 'ml' },
  slo: { latencyP99Ms: 250, successRate: 0.999 },
};
const registered = { type: 'WorkloadRegistered', data: { workloadId, specRevision: 1, spec } } as const;
const updated = {
  type: 'WorkloadSpecUpdated',
  data: { workloadId, specRevision: 2, spec: { ...spec, image: 'ghcr.io/acme/llm:1.3' }, changes: { image: 'ghcr.io/acme/llm:1.3' } },
} as const;
const retired = { type: 'WorkloadRetired', data: { workloadId, reason: 'replaced by llm-serve-v2' } } as const;

const register: WorkloadCommand = { type: 'RegisterWorkload', workloadId, spec };
const update: WorkloadCommand = { type: 'UpdateWorkloadSpec', workloadId, changes: { image: 'ghcr.io/acme/llm:1.3' } };
const retire: WorkloadCommand = { type: 'RetireWorkload', workloadId, reason: 'replaced by llm-serve-v2' };

/** The issue paths a rejected parse names, dotted. */
function paths(result: { success: boolean; error?: { issues: { path: PropertyKey[] }[] } }): string[] {
  expect(result.success, 'the parse should fail').to.equal(false);
  return result.error!.issues.map((issue) => issue.path.map(String).join('.'));
}

describe('Workload decider', () => {
  describe('register', () => {
    it('given nothing, when registered, then WorkloadRegistered at spec revision 1', () => {
      given(workloadDecider).when(register).then([registered]);
    });
    it('given an active workload, when registered again, then InvalidTransition', () => {
      given(workloadDecider, [registered]).when(register).thenThrows(InvalidTransition, /already registered/);
    });
    it('given an updated workload, when registered again, then InvalidTransition', () => {
      given(workloadDecider, [registered, updated]).when(register).thenThrows(InvalidTransition, /already registered/);
    });
    it('given a retired workload, when registered again, then InvalidTransition', () => {
      given(workloadDecider, [registered, retired]).when(register).thenThrows(InvalidTransition, /retired.*already registered/);
    });
    it('given a registration, then the state is active at revision 1 with that revision kept', () => {
      const { state } = given(workloadDecider, [registered]);
      expect(state).to.deep.equal({ status: 'active', id: workloadId, specRevision: 1, spec, revisions: { 1: spec } });
    });
  });

  describe('update spec', () => {
    it('given an active workload, when the image changes, then WorkloadSpecUpdated with the full spec and only the changes', () => {
      given(workloadDecider, [registered])
        .when({ type: 'UpdateWorkloadSpec', workloadId, changes: { image: 'ghcr.io/acme/llm:1.3', labels: { team: 'ml' } } })
        .then([updated]);
    });
    it('given an active workload, when the values it already has are sent, then nothing', () => {
      given(workloadDecider, [registered])
        .when({
          type: 'UpdateWorkloadSpec',
          workloadId,
          changes: { image: spec.image, labels: { team: 'ml' }, resources: { cpu: '4', memory: '16Gi', gpu: { count: 1, sku: 'nvidia-a100-80gb' } } },
        })
        .then([]);
    });
    it('given an updated workload, when the update is sent again, then nothing', () => {
      given(workloadDecider, [registered, updated]).when(update).then([]);
    });
    it('given an active workload, when resources are sent, then they replace the old ones whole', () => {
      const resources = { cpu: '8', memory: '32Gi' };
      given(workloadDecider, [registered])
        .when({ type: 'UpdateWorkloadSpec', workloadId, changes: { resources } })
        .then([{ type: 'WorkloadSpecUpdated', data: { workloadId, specRevision: 2, spec: { ...spec, resources }, changes: { resources } } }]);
    });
    it('given nothing, when updated, then NotFound', () => {
      given(workloadDecider).when(update).thenThrows(NotFound, /workload .* does not exist/);
    });
    it('given a retired workload, when updated, then InvalidTransition', () => {
      given(workloadDecider, [registered, retired]).when(update).thenThrows(InvalidTransition, /retired: cannot update spec/);
    });
  });

  describe('revisions', () => {
    it('given several updates, then each takes the next revision and every revision is kept', () => {
      const commands: WorkloadCommand[] = [
        { type: 'UpdateWorkloadSpec', workloadId, changes: { image: 'ghcr.io/acme/llm:1.3' } },
        { type: 'UpdateWorkloadSpec', workloadId, changes: { image: 'ghcr.io/acme/llm:1.3' } },
        { type: 'UpdateWorkloadSpec', workloadId, changes: { env: { MODEL_PATH: '/models/llm-v2' } } },
        { type: 'UpdateWorkloadSpec', workloadId, changes: { slo: { latencyP99Ms: 100 }, labels: {} } },
      ];
      const history: WorkloadEvent[] = [registered];
      for (const command of commands) history.push(...given(workloadDecider, history).when(command).events());

      expect(history.map((event) => event.type === 'WorkloadSpecUpdated' && event.data.specRevision)).to.deep.equal([false, 2, 3, 4]);
      const last = history.at(-1)!;
      expect(last.type === 'WorkloadSpecUpdated' && last.data.changes).to.deep.equal({ slo: { latencyP99Ms: 100 }, labels: {} });

      const state = fold(workloadDecider, history);
      const revision3 = { ...spec, image: 'ghcr.io/acme/llm:1.3', env: { MODEL_PATH: '/models/llm-v2' } };
      const revision4 = { ...revision3, slo: { latencyP99Ms: 100 }, labels: {} };
      expect(state).to.deep.include({ status: 'active', specRevision: 4, spec: revision4 });
      expect(state.status !== 'absent' && Object.keys(state.revisions)).to.deep.equal(['1', '2', '3', '4']);
      expect(specAt(state, 1)).to.deep.equal(spec);
      expect(specAt(state, 2)).to.deep.equal({ ...spec, image: 'ghcr.io/acme/llm:1.3' });
      expect(specAt(state, 3)).to.deep.equal(revision3);
      expect(specAt(state, 4)).to.deep.equal(revision4);
      expect(specAt(state, 0)).to.equal(undefined);
      expect(specAt(state, 5)).to.equal(undefined);
    });
    it('given nothing, then no revision exists', () => {
      expect(specAt(given(workloadDecider).state, 1)).to.equal(undefined);
    });
  });

  describe('retire', () => {
    it('given an active workload, when retired, then WorkloadRetired', () => {
      given(workloadDecider, [registered]).when(retire).then([retired]);
    });
    it('given an updated workload, when retired without a reason, then WorkloadRetired', () => {
      given(workloadDecider, [registered, updated])
        .when({ type: 'RetireWorkload', workloadId })
        .then([{ type: 'WorkloadRetired', data: { workloadId, reason: undefined } }]);
    });
    it('given a retirement, then the state is retired and keeps its spec and revisions', () => {
      const { state } = given(workloadDecider, [registered, updated, retired]);
      expect(state).to.deep.include({ status: 'retired', specRevision: 2, spec: updated.data.spec });
      expect(specAt(state, 1)).to.deep.equal(spec);
    });
    it('given nothing, when retired, then NotFound', () => {
      given(workloadDecider).when(retire).thenThrows(NotFound);
    });
    it('given a retired workload, when retired again, then InvalidTransition', () => {
      given(workloadDecider, [registered, retired]).when(retire).thenThrows(InvalidTransition, /retired: cannot retire/);
    });
  });

  describe('gpuRequest', () => {
    it('says what GPUs a spec asks for, and nothing for a CPU-only spec', () => {
      expect(gpuRequest(spec)).to.deep.equal({ count: 1, sku: 'nvidia-a100-80gb' });
      expect(gpuRequest({ ...spec, resources: { cpu: '1', memory: '1Gi' } })).to.equal(undefined);
    });
  });

  describe('bodies', () => {
    const minimal = {
      name: 'train-bert',
      namespace: 'research',
      type: 'training',
      image: 'ghcr.io/acme/bert:latest',
      resources: { cpu: '500m', memory: '2Gi' },
    };

    it('accepts a minimal body and defaults labels', () => {
      expect(workloadBody.parse(minimal)).to.deep.equal({ ...minimal, labels: {} });
    });
    it('accepts a full body as it is', () => {
      expect(workloadBody.parse(spec)).to.deep.equal(spec);
    });
    it('rejects unknown fields, at the top and inside resources, gpu and slo', () => {
      const result = workloadBody.safeParse({
        ...minimal,
        replicas: 3,
        resources: { cpu: '1', memory: '1Gi', disk: '1Gi', gpu: { count: 1, sku: 'nvidia-h100', mig: true } },
        slo: { latencyP50Ms: 10 },
      });
      expect(paths(result)).to.have.members(['', 'resources', 'resources.gpu', 'slo']);
      const messages = result.error!.issues.map((issue) => issue.message);
      expect(messages).to.include.members([
        'unknown field replicas: accepted are name, namespace, type, image, command, args, env, resources, labels, slo',
        'unknown field disk: accepted are cpu, memory, gpu',
        'unknown field mig: accepted are count, sku',
        'unknown field latencyP50Ms: accepted are latencyP99Ms, successRate',
      ]);
    });
    it('rejects bad names, type, image and quantities, naming their paths', () => {
      const result = workloadBody.safeParse({
        ...minimal,
        name: 'Not_A_Name',
        namespace: '',
        type: 'serving',
        image: 'ghcr.io/acme/bert latest',
        resources: { cpu: '0', memory: 'lots' },
      });
      expect(paths(result)).to.have.members(['name', 'namespace', 'type', 'image', 'resources.cpu', 'resources.memory']);
      const messages = result.error!.issues.map((issue) => issue.message);
      expect(messages).to.include.members(['one of inference, training, batch', 'a positive CPU quantity such as "2" or "500m"']);
    });
    it('rejects an empty or over-long image', () => {
      expect(paths(workloadBody.safeParse({ ...minimal, image: '' }))).to.deep.equal(['image']);
      expect(paths(workloadBody.safeParse({ ...minimal, image: `r/${'a'.repeat(511)}` }))).to.deep.equal(['image']);
    });
    it('rejects environment variable names that are not identifiers, naming the key', () => {
      const result = workloadBody.safeParse({ ...minimal, env: { GOOD_1: 'x', '1BAD': 'y', 'HAS-DASH': 'z', _OK: 'w' } });
      expect(paths(result)).to.have.members(['env.1BAD', 'env.HAS-DASH']);
      expect(result.error!.issues[0]!.message).to.match(/environment variable name/);
    });
    for (const count of [0, 65, 1.5, '2']) {
      it(`rejects a GPU count of ${JSON.stringify(count)} at resources.gpu.count`, () => {
        const result = workloadBody.safeParse({ ...minimal, resources: { cpu: '1', memory: '1Gi', gpu: { count, sku: 'nvidia-h100' } } });
        expect(paths(result)).to.deep.equal(['resources.gpu.count']);
        expect(result.error!.issues[0]!.message).to.equal('a whole number of GPUs from 1 to 64');
      });
    }
    it('accepts GPU counts from 1 to 64 and rejects a bad SKU', () => {
      for (const count of [1, 64]) {
        expect(workloadBody.safeParse({ ...minimal, resources: { cpu: '1', memory: '1Gi', gpu: { count, sku: 'nvidia-h100' } } }).success).to.equal(true);
      }
      const result = workloadBody.safeParse({ ...minimal, resources: { cpu: '1', memory: '1Gi', gpu: { count: 1, sku: 'nvidia h100' } } });
      expect(paths(result)).to.deep.equal(['resources.gpu.sku']);
    });
    it('accepts a success rate in (0, 1] and a positive latency, and nothing else', () => {
      expect(workloadBody.safeParse({ ...minimal, slo: { successRate: 1, latencyP99Ms: 0.5 } }).success).to.equal(true);
      const result = workloadBody.safeParse({ ...minimal, slo: { successRate: 0, latencyP99Ms: -1 } });
      expect(paths(result)).to.have.members(['slo.successRate', 'slo.latencyP99Ms']);
      expect(paths(workloadBody.safeParse({ ...minimal, slo: { successRate: 1.01 } }))).to.deep.equal(['slo.successRate']);
    });
    it('rejects command and args that are not lists of strings', () => {
      expect(paths(workloadBody.safeParse({ ...minimal, command: 'python train.py', args: [1] }))).to.have.members(['command', 'args.0']);
    });

    it('accepts a patch of any mutable fields, without defaulting labels', () => {
      const patch = workloadPatchBody.parse({ image: 'ghcr.io/acme/bert:2', resources: { cpu: '2', memory: '4Gi' } });
      expect(patch).to.deep.equal({ image: 'ghcr.io/acme/bert:2', resources: { cpu: '2', memory: '4Gi' } });
    });
    it('rejects an empty patch, and one whose fields are all undefined', () => {
      expect(workloadPatchBody.safeParse({}).error!.issues[0]!.message).to.match(/at least one field to change/);
      expect(workloadPatchBody.safeParse({ image: undefined }).success).to.equal(false);
    });
    for (const field of ['name', 'namespace', 'type']) {
      it(`rejects a patch that names ${field}: identity cannot change`, () => {
        const result = workloadPatchBody.safeParse({ [field]: 'x', image: 'ghcr.io/acme/bert:2' });
        expect(paths(result)).to.deep.equal(['']);
        expect(result.error!.issues[0]).to.deep.include({ code: 'unrecognized_keys', keys: [field] });
        expect(result.error!.issues[0]!.message).to.equal(
          `cannot patch ${field}: name, namespace and type are fixed, and a patch may set only image, command, args, env, resources, labels, slo`,
        );
      });
    }
    it('checks patch fields as the body does', () => {
      const result = workloadPatchBody.safeParse({ env: { 'bad name': 'x' }, resources: { cpu: 'two', memory: '1Gi' } });
      expect(paths(result)).to.have.members(['env.bad name', 'resources.cpu']);
    });

    it('accepts a retirement with or without a reason, and nothing else', () => {
      expect(workloadRetireBody.parse({})).to.deep.equal({});
      expect(workloadRetireBody.parse({ reason: 'done' })).to.deep.equal({ reason: 'done' });
      expect(paths(workloadRetireBody.safeParse({ reason: '' }))).to.deep.equal(['reason']);
      expect(paths(workloadRetireBody.safeParse({ force: true }))).to.deep.equal(['']);
    });
  });

  describe('events', () => {
    const withoutReason = { type: 'WorkloadRetired', data: { workloadId } } as const;
    for (const [label, event] of [
      ['WorkloadRegistered', registered],
      ['WorkloadSpecUpdated', updated],
      ['WorkloadRetired', retired],
      ['WorkloadRetired without a reason', withoutReason],
    ] as const) {
      it(`parses ${label} at version 1`, () => {
        expect(workloadEvents.version(event.type)).to.equal(1);
        expect(workloadEvents.parse(event.type, 1, event.data)).to.deep.equal(event);
      });
    }
    it('lists exactly its event types', () => {
      expect(workloadEvents.types).to.deep.equal(['WorkloadRegistered', 'WorkloadSpecUpdated', 'WorkloadRetired']);
    });
    it('refuses an unknown type or schema version, and data that breaks the schema', () => {
      expect(() => workloadEvents.parse('WorkloadRegistered', 2, registered.data)).to.throw(UnknownEvent);
      expect(() => workloadEvents.parse('WorkloadExploded', 1, {})).to.throw(UnknownEvent);
      expect(() => workloadEvents.parse('WorkloadRegistered', 1, { ...registered.data, specRevision: 2 })).to.throw(UnknownEvent);
      expect(() => workloadEvents.parse('WorkloadSpecUpdated', 1, { ...updated.data, specRevision: 1 })).to.throw(UnknownEvent);
      expect(() => workloadEvents.parse('WorkloadSpecUpdated', 1, { ...updated.data, changes: { name: 'x' } })).to.throw(UnknownEvent);
    });
  });
});
