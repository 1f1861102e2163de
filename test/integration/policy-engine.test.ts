// The policy engine through the real server: policy CRUD, the three modes, every rule type judging real
// commands, quotas under concurrency, break glass, what-if, action plans, and the replay of every decision.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { RecordedEvent } from '../../domain/event-store.js';
import { hoursLeftInMonth } from '../../domain/ledger.js';
import type { PolicyDecision, PolicyResult } from '../../domain/policy-evaluation.js';
import { POLICY_TYPES, type PolicyType } from '../../domain/policy.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import { backends, type Caller, type Reply, type TestApi } from '../support/sentinel-api.js';

interface FieldError {
  path: string;
  message: string;
}

interface Problem {
  type: string;
  status: number;
  detail: string;
  errors?: FieldError[];
  recordedIn?: { id: string; revision: number; position: string | null };
}

interface Written {
  id: string;
  revision: number;
  position: string;
}

interface WhatIf {
  verdict: 'allow' | 'deny' | 'refused';
  refused?: string;
  policySetRevision: number;
  change?: { action: string; target: { id: string } };
  inputs?: { cost: { fleetHourlyUsd: number; targetHourlyUsdBefore: number; targetHourlyUsdAfter: number }; rateLimits?: unknown; history?: unknown };
  results: PolicyResult[];
}

interface Replay {
  eventId: string;
  stream: string;
  policySetRevision: number;
  recorded: { verdict: string; evaluations: { verdict: string; results: PolicyResult[] }[] };
  replayed: { verdict: string; evaluations: { verdict: string; results: PolicyResult[] }[] };
  matches: boolean;
}

interface Health {
  uptime?: Record<string, number>;
  latencyP99Ms?: number;
  successRate?: number;
}

const GPU = 'nvidia-a100-80gb';
/** One replica of the GPU workload below at list prices: 1 A100 ($3.67/h), 4 vCPU and 16 GiB. */
const GPU_REPLICA_HOURLY_USD = DEFAULT_PRICES.gpuHourlyUsd[GPU]! + 4 * DEFAULT_PRICES.vcpuHourlyUsd + 16 * DEFAULT_PRICES.memoryGibHourlyUsd;

const cluster = {
  name: 'policy-east',
  apiServer: 'https://10.0.0.1:6443',
  credentials: { source: 'kubeconfig-base64', data: Buffer.from('apiVersion: v1\nkind: Config\n').toString('base64') },
  region: 'us-east-1',
  gpuSkus: [GPU],
};

const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;
const paths = (reply: Reply<unknown>) => ((reply.body as { errors?: FieldError[] } | undefined)?.errors ?? []).map((e) => e.path);
const decisionsIn = (events: RecordedEvent[]) => events.filter((e) => e.type === 'PolicyEvaluated').map((e) => e.data as unknown as PolicyDecision);
const resultsOf = (decision: PolicyDecision) => decision.evaluations.flatMap((e) => e.results);
/** A window of the given width around the present. */
const around = (minutes: number) => ({
  start: new Date(Date.now() - minutes * 60_000).toISOString(),
  end: new Date(Date.now() + minutes * 60_000).toISOString(),
});

for (const backend of backends) {
  describe(`policy engine on ${backend.name}`, function () {
    this.timeout(120_000);
    let api: TestApi;
    let dir: string;
    let healthFile: string;
    let healthWrites = 0;
    let clusterId: string;

    before(async function () {
      if (backend.skipReason) {
        console.log(`      skipped: ${backend.skipReason}`);
        return this.skip();
      }
      dir = await mkdtemp(path.join(tmpdir(), 'sentinel-policy-'));
      healthFile = path.join(dir, 'health.json');
      await writeFile(healthFile, '{}');
      api = await backend.start({ SENTINEL_HEALTH_FILE: healthFile });
      clusterId = await created('/clusters', cluster);
    });
    after(async () => {
      await api?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    // ---- helpers ----------------------------------------------------------------------------------------

    async function created(route: string, body: unknown, as: Caller = 'admin'): Promise<string> {
      const reply = await api.request<Written>('post', route, { as, body });
      expect(reply.status, `${route}: ${JSON.stringify(reply.body)}`).to.be.oneOf([201, 202]);
      return reply.body.id;
    }

    async function createPolicy(body: Record<string, unknown>): Promise<string> {
      const reply = await api.request<Written>('post', '/policies', { body: { mode: 'enforce', ...body } });
      expect(reply.status, JSON.stringify(reply.body)).to.equal(201);
      return reply.body.id;
    }

    /** `count` workloads in a namespace and team of their own, each deployed once at `replicas`. */
    async function placed(options: { replicas: number; count?: number; gpu?: boolean }) {
      const namespace = unique('ns');
      const team = unique('team');
      const workloadIds: string[] = [];
      const deploymentIds: string[] = [];
      for (let i = 0; i < (options.count ?? 1); i++) {
        const workloadId = await created('/workloads', {
          name: unique('svc'),
          namespace,
          type: 'inference',
          image: 'registry.local/model:1.0',
          resources: options.gpu ? { cpu: '4', memory: '16Gi', gpu: { count: 1, sku: GPU } } : { cpu: '1', memory: '2Gi' },
          labels: { team },
          slo: { latencyP99Ms: 250, successRate: 0.999 },
        });
        workloadIds.push(workloadId);
        deploymentIds.push(await created('/deployments', { workloadId, clusterId, replicas: options.replicas }));
      }
      return { namespace, team, workloadId: workloadIds[0]!, deploymentId: deploymentIds[0]!, deploymentIds };
    }

    const scale = (deploymentId: string, replicas: number, as: Caller = 'operator', headers?: Record<string, string>) =>
      api.request<Problem & Written>('post', `/deployments/${deploymentId}/scale`, { as, body: { replicas }, headers });
    const restart = (deploymentId: string, as: Caller = 'operator') =>
      api.request<Problem & Written>('post', `/deployments/${deploymentId}/restart`, { as });
    const whatIf = (change: Record<string, unknown>, as: Caller = 'operator') =>
      api.request<WhatIf & Problem>('post', '/policies/evaluate', { as, body: { change } });
    const deploymentEvents = (deploymentId: string) => api.stream(`deployment-${deploymentId}`);

    /** Replicas as the deployment's stream last set them. */
    async function replicasOf(deploymentId: string): Promise<number> {
      const events = await deploymentEvents(deploymentId);
      const last = events.filter((e) => e.type === 'DeploymentScaled' || e.type === 'DeploymentCreated').at(-1);
      return last!.data['replicas'] as number;
    }

    /** Rewrites the health file; the mtime is moved on explicitly so the source sees a change on any filesystem. */
    async function health(byDeployment: Record<string, Health>): Promise<void> {
      await writeFile(healthFile, JSON.stringify(byDeployment));
      healthWrites += 1;
      const at = new Date(Date.now() + healthWrites * 1000);
      await utimes(healthFile, at, at);
    }

    /** A 422 from policy: each error names a policy, and the refusal is recorded in the deployment's stream. */
    function expectRefusedBy(reply: Reply<Problem>, ...names: string[]): void {
      expect(reply.status, JSON.stringify(reply.body)).to.equal(422);
      expect(reply.headers.get('content-type')).to.match(/application\/problem\+json/);
      expect(reply.body.type).to.equal('urn:sentinel:problem:policy-violation');
      expect(paths(reply)).to.deep.equal(names.map((name) => `policies.${name}`));
      expect(reply.body.recordedIn).to.be.an('object');
    }

    // ---- 1. CRUD ------------------------------------------------------------------------------------------

    describe('policy CRUD', () => {
      const parametersOf: Record<PolicyType, Record<string, unknown>> = {
        cost_ceiling: { maxHourlyUsd: 500 },
        quota: { limits: { replicas: 10, cpu: '20', memory: '64Gi', gpus: 4, gpusBySku: { [GPU]: 2 } } },
        sla: { minUptime: 0.999 },
        slo: { latencyP99Ms: 300, successRate: 0.99 },
        rate_limit: { maxActions: 5, windowSeconds: 600, stabilizationSeconds: 120 },
        change_freeze: { windows: [{ start: '2030-12-24T00:00:00Z', end: '2030-12-27T00:00:00Z' }], recurring: [{ timeZone: 'Europe/Berlin', days: ['sat', 'sun'], start: '22:00', end: '06:00' }] },
        budget: { monthlyUsd: 10_000 },
      };

      it('creates a policy of each of the 7 types with 201 and a Location, recorded with its defaults', async () => {
        // Scoped to a namespace nothing runs in, so these policies judge no other test's changes.
        const selector = { namespaces: [unique('nowhere')] };
        for (const type of POLICY_TYPES) {
          const name = unique(type);
          const reply = await api.request<Written>('post', '/policies', { body: { name, type, mode: 'audit', selector, parameters: parametersOf[type] } });
          expect(reply.status, `${type}: ${JSON.stringify(reply.body)}`).to.equal(201);
          expect(reply.headers.get('location')).to.equal(`/api/v1/policies/${reply.body.id}`);
          expect(reply.body.revision).to.be.a('number');
          expect(reply.body.position).to.be.a('string');
          const last = (await api.stream('policyset-global')).at(-1)!;
          expect(last.type).to.equal('PolicyCreated');
          expect(last.revision).to.equal(reply.body.revision);
          expect(last.data['policyId']).to.equal(reply.body.id);
          expect(last.data['policy']).to.deep.include({ name, type, mode: 'audit', priority: 100, enabled: true, selector });
        }
        const quota = (await api.stream('policyset-global')).find((e) => e.type === 'PolicyCreated' && (e.data['policy'] as { type: string }).type === 'quota');
        expect((quota!.data['policy'] as { parameters: unknown }).parameters).to.deep.equal({ per: 'namespace', ...parametersOf.quota });
      });

      it('renames, replaces parameters, disables, enables and deletes, each recorded once', async () => {
        const name = unique('quota');
        const id = await createPolicy({ name, type: 'quota', mode: 'audit', selector: { namespaces: [unique('nowhere')] }, parameters: { limits: { replicas: 4 } } });
        const patch = (body: unknown) => api.request<Written & Problem>('patch', `/policies/${id}`, { body });

        const renamed = await patch({ name: `${name}-renamed` });
        expect(renamed.status).to.equal(202);
        expect(renamed.body.id).to.equal(id);
        const replaced = await patch({ parameters: { per: 'cluster', limits: { gpus: 8 } } });
        expect(replaced.status).to.equal(202);
        expect((await patch({ enabled: false })).status).to.equal(202);
        // Disabling a disabled policy asks for what is already so: accepted, nothing appended.
        const again = await patch({ enabled: false });
        expect(again.status).to.equal(202);
        expect(again.body.revision).to.equal((await api.stream('policyset-global')).at(-1)!.revision);
        expect((await patch({ enabled: true })).status).to.equal(202);
        expect((await api.request('delete', `/policies/${id}`)).status).to.equal(202);

        const events = (await api.stream('policyset-global')).filter((e) => e.data['policyId'] === id);
        expect(events.map((e) => e.type)).to.deep.equal(['PolicyCreated', 'PolicyUpdated', 'PolicyUpdated', 'PolicyDisabled', 'PolicyEnabled', 'PolicyDeleted']);
        expect(events[1]!.data['changes']).to.deep.equal({ name: `${name}-renamed` });
        // Parameters replace the old ones whole, with the type's defaults filled in.
        expect(events[2]!.data['changes']).to.deep.equal({ parameters: { per: 'cluster', limits: { gpus: 8 } } });

        // A deleted policy is gone to every command.
        expect((await api.request('delete', `/policies/${id}`)).status).to.equal(404);
        expect((await patch({ enabled: true })).status).to.equal(404);
        expect((await api.request('patch', `/policies/${randomUUID()}`, { body: { enabled: true } })).status).to.equal(404);
      });

      it('checks replaced parameters against the policy’s type, answering 422 with parameters.* paths', async () => {
        const quota = await createPolicy({ name: unique('quota'), type: 'quota', mode: 'audit', selector: { namespaces: [unique('nowhere')] }, parameters: { limits: { replicas: 4 } } });
        const rate = await createPolicy({ name: unique('rate'), type: 'rate_limit', mode: 'audit', selector: { namespaces: [unique('nowhere')] }, parameters: { maxActions: 1, windowSeconds: 60 } });
        const head = await api.head();

        // A cost ceiling's parameters given to a quota.
        const mismatched = await api.request<Problem>('patch', `/policies/${quota}`, { body: { parameters: { maxHourlyUsd: 10 } } });
        expect(mismatched.status, JSON.stringify(mismatched.body)).to.equal(422);
        expect(paths(mismatched)).to.include('parameters.limits');
        for (const p of paths(mismatched)) expect(p).to.match(/^parameters(\.|$)/);

        const outOfRange = await api.request<Problem>('patch', `/policies/${rate}`, { body: { parameters: { maxActions: 0, windowSeconds: 100_000 } } });
        expect(outOfRange.status).to.equal(422);
        expect(paths(outOfRange)).to.have.members(['parameters.maxActions', 'parameters.windowSeconds']);

        const emptyLimits = await api.request<Problem>('patch', `/policies/${quota}`, { body: { parameters: { limits: {} } } });
        expect(emptyLimits.status).to.equal(422);
        expect(paths(emptyLimits)).to.deep.equal(['parameters.limits']);
        expect(await api.head()).to.equal(head);
      });

      it('refuses a name already taken, regardless of case, naming the field', async () => {
        const name = unique('Taken');
        const selector = { namespaces: [unique('nowhere')] };
        await createPolicy({ name, type: 'budget', mode: 'audit', selector, parameters: { monthlyUsd: 100 } });
        const duplicate = await api.request<Problem>('post', '/policies', {
          body: { name: name.toLowerCase(), type: 'sla', mode: 'audit', selector, parameters: { minUptime: 0.99 } },
        });
        expect(duplicate.status).to.equal(422);
        expect(paths(duplicate)).to.deep.equal(['name']);

        const other = await createPolicy({ name: unique('other'), type: 'sla', mode: 'audit', selector, parameters: { minUptime: 0.99 } });
        const rename = await api.request<Problem>('patch', `/policies/${other}`, { body: { name: name.toUpperCase() } });
        expect(rename.status).to.equal(422);
        expect(paths(rename)).to.deep.equal(['name']);
      });

      it('answers 400 naming every bad field of a malformed body, and appends nothing', async () => {
        const head = await api.head();
        const bad = await api.request<Problem>('post', '/policies', {
          body: { type: 'quota', mode: 'block', priority: 1.5, parameters: { limits: { replicas: -1 } }, colour: 'blue' },
        });
        expect(bad.status).to.equal(400);
        expect(paths(bad)).to.include.members(['name', 'mode', 'priority', 'parameters.limits.replicas', 'colour']);

        const unknownType = await api.request<Problem>('post', '/policies', { body: { name: unique('x'), type: 'spend', mode: 'enforce', parameters: {} } });
        expect(unknownType.status).to.equal(400);
        expect(paths(unknownType)).to.deep.equal(['type']);

        const emptyPatch = await api.request<Problem>('patch', `/policies/${randomUUID()}`, { body: {} });
        expect(emptyPatch.status).to.equal(400);
        const typePatch = await api.request<Problem>('patch', `/policies/${randomUUID()}`, { body: { type: 'sla' } });
        expect(typePatch.status).to.equal(400);
        expect(paths(typePatch)).to.include('type');
        expect(await api.head()).to.equal(head);
      });

      it('lets only an admin write policies', async () => {
        const id = await createPolicy({ name: unique('guarded'), type: 'budget', mode: 'audit', selector: { namespaces: [unique('nowhere')] }, parameters: { monthlyUsd: 100 } });
        const head = await api.head();
        for (const as of ['operator', 'viewer', 'system'] as const) {
          const body = { name: unique('mine'), type: 'budget', mode: 'audit', parameters: { monthlyUsd: 100 } };
          expect((await api.request('post', '/policies', { as, body })).status, as).to.equal(403);
          expect((await api.request('patch', `/policies/${id}`, { as, body: { enabled: false } })).status, as).to.equal(403);
          expect((await api.request('delete', `/policies/${id}`, { as })).status, as).to.equal(403);
        }
        expect((await api.request('post', '/policies', { as: 'anonymous', body: {} })).status).to.equal(401);
        expect(await api.head()).to.equal(head);
      });
    });

    // ---- 2. modes -----------------------------------------------------------------------------------------

    describe('enforce, dry_run and audit', () => {
      it('refuses in enforce, records only in dry_run and audit, and lets a change that lowers usage through', async () => {
        const { namespace, deploymentId } = await placed({ replicas: 2 });
        const name = unique('ns-replicas');
        const id = await createPolicy({ name, type: 'quota', selector: { namespaces: [namespace] }, parameters: { limits: { replicas: 3 } } });
        const ledgerBefore = (await api.stream('quota-global')).length;
        const before = await deploymentEvents(deploymentId);

        const refused = await scale(deploymentId, 4);
        expectRefusedBy(refused, name);
        const violation = `namespace ${namespace} would exceed its quota: 4 replicas over the limit of 3 replicas`;
        expect(refused.body.errors![0]!.message).to.equal(`${name} (quota): ${violation}`);
        const after = await deploymentEvents(deploymentId);
        // Exactly one event: the decision, with verdict deny; the deployment did not change, the ledger admitted nothing.
        expect(after).to.have.length(before.length + 1);
        const [decision] = decisionsIn(after.slice(before.length));
        expect(decision!.verdict).to.equal('deny');
        expect(refused.body.recordedIn).to.deep.equal({ id: deploymentId, revision: after.at(-1)!.revision, position: after.at(-1)!.position });
        expect(resultsOf(decision!)).to.deep.include({ policyId: id, name, type: 'quota', mode: 'enforce', priority: 100, outcome: 'fail', message: violation });
        expect(await replicasOf(deploymentId)).to.equal(2);
        expect(await api.stream('quota-global')).to.have.length(ledgerBefore);

        for (const [mode, replicas] of [['dry_run', 4], ['audit', 5]] as const) {
          expect((await api.request('patch', `/policies/${id}`, { body: { mode } })).status).to.equal(202);
          const accepted = await scale(deploymentId, replicas);
          expect(accepted.status, JSON.stringify(accepted.body)).to.equal(202);
          const events = await deploymentEvents(deploymentId);
          expect(events.slice(-2).map((e) => e.type)).to.deep.equal(['PolicyEvaluated', 'DeploymentScaled']);
          const recorded = events.at(-2)!.data as unknown as PolicyDecision;
          expect(recorded.verdict).to.equal('allow');
          const result = resultsOf(recorded).find((r) => r.policyId === id)!;
          expect(result).to.deep.include({ mode, outcome: 'fail' });
          expect(result.message).to.contain('would exceed its quota');
          expect(await replicasOf(deploymentId)).to.equal(replicas);
        }

        // Back to enforce while 5 replicas hold a quota of 3: a scale-down still passes, another scale-up does not.
        expect((await api.request('patch', `/policies/${id}`, { body: { mode: 'enforce' } })).status).to.equal(202);
        const lowered = await scale(deploymentId, 4);
        expect(lowered.status, JSON.stringify(lowered.body)).to.equal(202);
        const loweredDecision = decisionsIn(await deploymentEvents(deploymentId)).at(-1)!;
        expect(resultsOf(loweredDecision).find((r) => r.policyId === id)).to.deep.include({ mode: 'enforce', outcome: 'pass' });
        expectRefusedBy(await scale(deploymentId, 5), name);
        expect(await replicasOf(deploymentId)).to.equal(4);
      });
    });

    // ---- 3. concurrency -----------------------------------------------------------------------------------

    describe('quota under concurrency', () => {
      it('never lets parallel scale-ups that each fit alone exceed a namespace quota together', async () => {
        const { namespace, deploymentIds } = await placed({ replicas: 1, count: 20 });
        const name = unique('ns-30');
        await createPolicy({ name, type: 'quota', selector: { namespaces: [namespace] }, parameters: { per: 'namespace', limits: { replicas: 30 } } });

        // Each alone: 19 others at 1 + 3 = 22 ≤ 30. Together: 20 × 3 = 60. Only 5 scale-ups of +2 fit in the 10 spare;
        // one process takes turns on the ledger, so exactly those 5 pass and none of the others is left to a conflict.
        const replies = await Promise.all(deploymentIds.map((id) => scale(id, 3)));
        const statuses = replies.map((r) => r.status);
        const succeeded = statuses.filter((s) => s === 202).length;
        expect(succeeded, statuses.join(',')).to.equal(5);
        for (const reply of replies.filter((r) => r.status !== 202)) {
          expect(reply.status, JSON.stringify(reply.body)).to.equal(422);
          expect(paths(reply)).to.deep.equal([`policies.${name}`]);
        }

        const replicas = await Promise.all(deploymentIds.map(replicasOf));
        expect(replicas.reduce((a, b) => a + b, 0)).to.be.at.most(30);
        expect(replicas.filter((r) => r === 3)).to.have.length(succeeded);
        // The ledger agrees with the streams.
        const admitted = (await api.stream('quota-global')).filter((e) => e.type === 'ChangeAdmitted' && deploymentIds.includes(e.data['targetId'] as string));
        const placements = new Map(admitted.map((e) => [e.data['targetId'] as string, (e.data['placement'] as { footprint: { replicas: number } }).footprint.replicas]));
        expect(deploymentIds.map((id) => placements.get(id))).to.deep.equal(replicas);
      });
    });

    // ---- 4. change freeze and break glass -------------------------------------------------------------------

    describe('change freeze', () => {
      it('refuses an operator’s change in a freeze, lets an admin break the glass, and refuses the header from anyone else', async () => {
        const { namespace, deploymentId } = await placed({ replicas: 2 });
        const name = unique('freeze');
        const id = await createPolicy({ name, type: 'change_freeze', selector: { namespaces: [namespace] }, parameters: { windows: [around(60)] } });

        const refused = await scale(deploymentId, 3);
        expectRefusedBy(refused, name);
        expect(refused.body.errors![0]!.message).to.match(/changes are frozen during the freeze from /);

        const head = await api.head();
        const justification = 'INC-4711: capacity for the outage recovery';
        const notAdmin = await scale(deploymentId, 3, 'operator', { 'X-Sentinel-Emergency': justification });
        expect(notAdmin.status).to.equal(403);
        expect(notAdmin.body.detail).to.contain('X-Sentinel-Emergency');
        const tooShort = await scale(deploymentId, 3, 'admin', { 'X-Sentinel-Emergency': 'urgent' });
        expect(tooShort.status).to.equal(400);
        expect(paths(tooShort)).to.deep.equal(['X-Sentinel-Emergency']);
        expect(await api.head()).to.equal(head);

        const broken = await scale(deploymentId, 3, 'admin', { 'X-Sentinel-Emergency': justification });
        expect(broken.status, JSON.stringify(broken.body)).to.equal(202);
        const events = await deploymentEvents(deploymentId);
        expect(events.slice(-2).map((e) => e.type)).to.deep.equal(['PolicyEvaluated', 'DeploymentScaled']);
        const decision = events.at(-2)!.data as unknown as PolicyDecision;
        expect(decision.verdict).to.equal('allow');
        expect(decision.breakGlass).to.deep.equal({ justification, actorId: api.principalIds.admin });
        const result = resultsOf(decision).find((r) => r.policyId === id)!;
        expect(result).to.deep.include({ type: 'change_freeze', outcome: 'pass', breakGlass: true });
        expect(result.message).to.contain(justification);
        expect(await replicasOf(deploymentId)).to.equal(3);
      });
    });

    // ---- 5. rate limits -----------------------------------------------------------------------------------

    describe('rate limit', () => {
      it('counts allowed changes to a target in a sliding window, the creation among them', async () => {
        const { namespace, deploymentId } = await placed({ replicas: 1 });
        const name = unique('restarts');
        // The creation is the first change to the deployment in the window, so 3 allows two restarts.
        await createPolicy({ name, type: 'rate_limit', selector: { namespaces: [namespace] }, parameters: { maxActions: 3, windowSeconds: 3600 } });
        expect((await restart(deploymentId)).status).to.equal(202);
        expect((await restart(deploymentId)).status).to.equal(202);
        const third = await restart(deploymentId);
        expectRefusedBy(third, name);
        expect(third.body.errors![0]!.message).to.match(
          new RegExp(`^${name} \\(rate_limit\\): 3 changes to deployment ${deploymentId} in the last 3600 s; at most 3 allowed; next allowed at \\S+Z$`),
        );
        // A refusal is not an allowed change: the count stays where it was.
        const fourth = await restart(deploymentId);
        expectRefusedBy(fourth, name);
        expect(fourth.body.errors![0]!.message).to.contain('3 changes to deployment');
        const types = (await deploymentEvents(deploymentId)).map((e) => e.type).filter((t) => t !== 'PolicyEvaluated');
        expect(types).to.deep.equal(['DeploymentCreated', 'DeploymentRestartRequested', 'DeploymentRestartRequested']);

        // The decision and the what-if show the count the rule compared, not the changes counted.
        const refusal = (await deploymentEvents(deploymentId)).at(-1)!;
        expect(refusal).to.include({ type: 'PolicyEvaluated', schemaVersion: 2 });
        const nextAllowed = third.body.errors![0]!.message.match(/next allowed at (\S+)$/)![1]!;
        const readings = {
          windows: [{ per: 'target', windowSeconds: 3600, count: 3, reached: [{ maxActions: 3, nextAllowedAt: new Date(nextAllowed).toISOString() }] }],
        };
        expect((refusal.data as unknown as PolicyDecision).evaluations[0]!.inputs).to.deep.include({ rateLimits: readings }).and.not.to.have.property('history');
        const asked = await whatIf({ kind: 'restart', deploymentId });
        expect(asked.body.verdict).to.equal('deny');
        expect(asked.body.inputs).to.deep.include({ rateLimits: readings }).and.not.to.have.property('history');
        expect(asked.body.results[0]!.message).to.equal(third.body.errors![0]!.message.slice(`${name} (rate_limit): `.length));
      });

      it('counts per target and actor apart from the admin’s creation', async () => {
        const { namespace, deploymentId } = await placed({ replicas: 1 });
        const name = unique('operator-restarts');
        await createPolicy({ name, type: 'rate_limit', selector: { namespaces: [namespace] }, parameters: { maxActions: 2, windowSeconds: 3600, per: 'target_and_actor' } });
        expect((await restart(deploymentId, 'operator')).status).to.equal(202);
        expect((await restart(deploymentId, 'operator')).status).to.equal(202);
        expectRefusedBy(await restart(deploymentId, 'operator'), name);
        // Another actor has a window of its own (only the creation, by the admin).
        expect((await restart(deploymentId, 'admin')).status).to.equal(202);
      });

      it('refuses a scale reversal within the stabilization window', async () => {
        const { namespace, deploymentId } = await placed({ replicas: 2 });
        const name = unique('anti-flap');
        await createPolicy({ name, type: 'rate_limit', selector: { namespaces: [namespace] }, parameters: { maxActions: 100, windowSeconds: 3600, stabilizationSeconds: 600 } });
        expect((await scale(deploymentId, 3)).status).to.equal(202);
        const down = await scale(deploymentId, 2);
        expectRefusedBy(down, name);
        expect(down.body.errors![0]!.message).to.match(new RegExp(`deployment ${deploymentId} was scaled up at \\S+; a scale down is refused until \\S+ \\(600 s stabilization\\)`));
        // The same direction is no flap.
        expect((await scale(deploymentId, 4)).status).to.equal(202);
        expect(await replicasOf(deploymentId)).to.equal(4);
      });
    });

    // ---- 6. SLA and SLO -----------------------------------------------------------------------------------

    describe('SLA and SLO', () => {
      it('holds disruptive changes while uptime or latency are off, and lets them through once the health file is healthy', async () => {
        const { namespace, deploymentId } = await placed({ replicas: 3 });
        const slaName = unique('sla');
        const sloName = unique('slo');
        await createPolicy({ name: slaName, type: 'sla', selector: { namespaces: [namespace] }, parameters: { minUptime: 0.999, windowDays: 30 } });
        await createPolicy({ name: sloName, type: 'slo', selector: { namespaces: [namespace] }, parameters: { latencyP99Ms: 250 } });

        // Uptime under the SLA; latency fine.
        await health({ [deploymentId]: { uptime: { '30': 0.998 }, latencyP99Ms: 200, successRate: 0.999 } });
        const restartRefused = await restart(deploymentId);
        expectRefusedBy(restartRefused, slaName);
        expect(restartRefused.body.errors![0]!.message).to.contain('error budget for 30 days spent');
        // A scale-up disrupts nothing.
        expect((await scale(deploymentId, 4)).status).to.equal(202);

        // Uptime fine; latency over the SLO: a restart passes, a scale-down does not.
        await health({ [deploymentId]: { uptime: { '30': 0.9995 }, latencyP99Ms: 400, successRate: 0.999 } });
        expect((await restart(deploymentId)).status).to.equal(202);
        const downRefused = await scale(deploymentId, 3);
        expectRefusedBy(downRefused, sloName);
        expect(downRefused.body.errors![0]!.message).to.contain('outside the SLO: p99 latency 400 ms over the target of 250 ms');
        expect(await replicasOf(deploymentId)).to.equal(4);

        // Healthy again.
        await health({ [deploymentId]: { uptime: { '30': 0.9995 }, latencyP99Ms: 180, successRate: 0.9995 } });
        expect((await scale(deploymentId, 3)).status).to.equal(202);
        expect((await restart(deploymentId)).status).to.equal(202);
        const decision = decisionsIn(await deploymentEvents(deploymentId)).at(-2)!;
        // The decision records what it saw, and where from: the file, which overrides what is observed.
        expect(decision.evaluations[0]!.inputs).to.deep.include({
          health: { uptime: { '30': 0.9995 }, latencyP99Ms: 180, successRate: 0.9995, source: { uptime: 'file', latency: 'file' } },
        });
        expect(resultsOf(decision).map((r) => [r.name, r.outcome])).to.deep.include.members([
          [slaName, 'pass'],
          [sloName, 'pass'],
        ]);
        expect(await replicasOf(deploymentId)).to.equal(3);
      });
    });

    // ---- 7. cost ----------------------------------------------------------------------------------------

    describe('cost ceiling and budget', () => {
      it('refuses a scale-up that takes the fleet over its hourly ceiling', async () => {
        const { namespace, deploymentId } = await placed({ replicas: 1, gpu: true });
        // What the rest of the fleet costs, as the engine sees it.
        const probe = await whatIf({ kind: 'scale', deploymentId, replicas: 4 });
        expect(probe.status).to.equal(200);
        const cost = probe.body.inputs!.cost;
        expect(cost.targetHourlyUsdBefore).to.be.closeTo(GPU_REPLICA_HOURLY_USD, 1e-9);
        expect(cost.targetHourlyUsdAfter).to.be.closeTo(4 * GPU_REPLICA_HOURLY_USD, 1e-9);
        // Room for 2.5 replicas on top of the rest of the fleet.
        const ceiling = Math.round((cost.fleetHourlyUsd + 2.5 * GPU_REPLICA_HOURLY_USD) * 100) / 100;
        const name = unique('ceiling');
        await createPolicy({ name, type: 'cost_ceiling', selector: { namespaces: [namespace] }, parameters: { maxHourlyUsd: ceiling } });

        const refused = await scale(deploymentId, 4);
        expectRefusedBy(refused, name);
        expect(refused.body.errors![0]!.message).to.contain(`over the ceiling of $${ceiling.toLocaleString('en-US', { minimumFractionDigits: 2 })}/h`);
        expect(refused.body.errors![0]!.message).to.contain('(this change raises it from $3.91/h to $15.64/h)');
        expect((await scale(deploymentId, 2)).status).to.equal(202);
        expect(await replicasOf(deploymentId)).to.equal(2);
      });

      it('refuses a scale-up that projects the team over its monthly budget', async () => {
        const { team, deploymentId } = await placed({ replicas: 1, gpu: true });
        const hours = hoursLeftInMonth(new Date().toISOString());
        // 2.5 replicas for the rest of the month; the month so far is a few milliseconds of one replica.
        const monthlyUsd = Math.round(2.5 * GPU_REPLICA_HOURLY_USD * hours * 100) / 100;
        const name = unique('budget');
        await createPolicy({ name, type: 'budget', selector: { labels: { team } }, parameters: { monthlyUsd } });

        const refused = await scale(deploymentId, 4);
        expectRefusedBy(refused, name);
        expect(refused.body.errors![0]!.message).to.match(new RegExp(`team ${team} would spend \\$[\\d,.]+ by the end of the month, over its budget of`));
        expect((await scale(deploymentId, 2)).status).to.equal(202);
        expect(await replicasOf(deploymentId)).to.equal(2);
      });
    });

    // ---- 8. what-if -------------------------------------------------------------------------------------

    describe('what-if', () => {
      it('answers the verdict and results a change would get, and appends nothing', async () => {
        const { namespace, workloadId, deploymentId } = await placed({ replicas: 2 });
        const name = unique('what-if');
        const id = await createPolicy({ name, type: 'quota', selector: { namespaces: [namespace] }, parameters: { limits: { replicas: 3 } } });
        const revision = (await api.stream('policyset-global')).at(-1)!.revision;
        const head = await api.head();

        const over = await whatIf({ kind: 'scale', deploymentId, replicas: 5 });
        expect(over.status, JSON.stringify(over.body)).to.equal(200);
        expect(over.body.verdict).to.equal('deny');
        expect(over.body.policySetRevision).to.equal(revision);
        expect(over.body.change).to.deep.include({ action: 'scale', target: { kind: 'deployment', id: deploymentId } });
        expect(over.body.results).to.deep.equal([
          { policyId: id, name, type: 'quota', mode: 'enforce', priority: 100, outcome: 'fail', message: `namespace ${namespace} would exceed its quota: 5 replicas over the limit of 3 replicas` },
        ]);

        const within = await whatIf({ kind: 'scale', deploymentId, replicas: 3 }, 'system');
        expect(within.body.verdict).to.equal('allow');
        expect(within.body.results[0]).to.deep.include({ outcome: 'pass' });

        const create = await whatIf({ kind: 'create', workloadId, clusterId, replicas: 2 });
        expect(create.body.verdict).to.equal('deny');
        expect(create.body.results[0]!.message).to.contain('4 replicas over the limit of 3');
        const remove = await whatIf({ kind: 'delete', deploymentId });
        expect(remove.body.verdict).to.equal('allow');

        const unknown = randomUUID();
        const refused = await whatIf({ kind: 'scale', deploymentId: unknown, replicas: 1 });
        expect(refused.status).to.equal(200);
        expect(refused.body).to.deep.include({ verdict: 'refused', refused: `deployment ${unknown} does not exist`, results: [] });

        expect((await whatIf({ kind: 'scale', deploymentId, replicas: 5 }, 'viewer')).status).to.equal(403);
        expect((await whatIf({ kind: 'grow', deploymentId })).status).to.equal(400);
        expect(await api.head()).to.equal(head);
        expect(await replicasOf(deploymentId)).to.equal(2);
      });
    });

    // ---- 9. action plans ----------------------------------------------------------------------------------

    describe('action plans', () => {
      let namespace: string;
      let first: string;
      let second: string;
      let quotaName: string;
      const judged = ['ActionPlanSubmitted', 'ActionPlanValidationStarted', 'PolicyEvaluated'];
      const submit = (body: Record<string, unknown>) =>
        api.request<Written & Problem>('post', '/action-plans', { as: 'operator', body: { reason: 'forecast', ...body } });
      const planEvents = (id: string) => api.stream(`plan-${id}`);

      before(async () => {
        const fleet = await placed({ replicas: 2, count: 2 });
        namespace = fleet.namespace;
        [first, second] = fleet.deploymentIds as [string, string];
        quotaName = unique('plan-quota');
        await createPolicy({ name: quotaName, type: 'quota', selector: { namespaces: [namespace] }, parameters: { limits: { replicas: 10 } } });
      });

      // Plans are judged, not carried out here: no deployment moves, whatever the verdict.
      afterEach(async () => {
        for (const id of [first, second]) {
          expect((await deploymentEvents(id)).map((e) => e.type)).to.deep.equal(['PolicyEvaluated', 'DeploymentCreated']);
        }
      });

      it('approves a plan within policy, with the decision between validation and approval', async () => {
        const approved = await submit({ actions: [{ kind: 'scale', deploymentId: first, replicas: 3 }, { kind: 'restart', deploymentId: second }] });
        expect(approved.status, JSON.stringify(approved.body)).to.equal(202);
        const events = await planEvents(approved.body.id);
        expect(events.map((e) => e.type)).to.deep.equal([...judged, 'ActionPlanApproved']);
        const decision = events[2]!.data as unknown as PolicyDecision;
        expect(decision.verdict).to.equal('allow');
        expect(decision.command).to.equal('SubmitActionPlan');
        expect(decision.evaluations.map((e) => [e.index, e.change.action, e.change.target.id])).to.deep.equal([
          [0, 'scale', first],
          [1, 'restart', second],
        ]);
        // A restart replaces pods by a rolling update, whose surge pods count against the quota too.
        expect(resultsOf(decision).filter((r) => r.type === 'quota').map((r) => r.outcome)).to.deep.equal(['pass', 'pass']);
      });

      it('rejects a plan with 422, recording violations that name the action', async () => {
        // The second action would take the namespace to 22 replicas.
        const rejected = await submit({ actions: [{ kind: 'scale', deploymentId: first, replicas: 3 }, { kind: 'scale', deploymentId: second, replicas: 20 }] });
        expect(rejected.status).to.equal(422);
        expect(rejected.body.type).to.equal('urn:sentinel:problem:policy-violation');
        expect(paths(rejected)).to.deep.equal(['actions.1']);
        expect(rejected.body.errors![0]!.message).to.equal(
          `${quotaName} (quota): namespace ${namespace} would exceed its quota: 22 replicas over the limit of 10 replicas`,
        );
        const events = await planEvents(rejected.body.recordedIn!.id);
        expect(events.map((e) => e.type)).to.deep.equal([...judged, 'ActionPlanRejected']);
        expect(rejected.body.recordedIn!.revision).to.equal(3);
        expect((events[2]!.data as unknown as PolicyDecision).verdict).to.equal('deny');
        expect(events[3]!.data['violations']).to.deep.equal(rejected.body.errors);
      });

      it('names the action, not the policy, when a plan of one action is rejected', async () => {
        const rejected = await submit({ actions: [{ kind: 'scale', deploymentId: second, replicas: 20 }] });
        expect(rejected.status).to.equal(422);
        expect(paths(rejected), JSON.stringify(rejected.body.errors)).to.deep.equal(['actions.0']);
        const events = await planEvents(rejected.body.recordedIn!.id);
        expect(events.at(-1)!.data['violations']).to.deep.equal(rejected.body.errors);
      });

      it('records a shadow plan that policy rejects as Rejected, answers 202 and runs nothing', async () => {
        const shadow = await submit({ shadow: true, actions: [{ kind: 'scale', deploymentId: second, replicas: 20 }] });
        expect(shadow.status, JSON.stringify(shadow.body)).to.equal(202);
        const events = await planEvents(shadow.body.id);
        expect(events.map((e) => e.type)).to.deep.equal([...judged, 'ActionPlanRejected']);
        expect(events[0]!.data['shadow']).to.equal(true);
        expect((events[2]!.data as unknown as PolicyDecision).verdict).to.equal('deny');
        const violations = events[3]!.data['violations'] as FieldError[];
        expect(violations.map((v) => v.path), JSON.stringify(violations)).to.deep.equal(['actions.0']);
        expect(violations[0]!.message).to.contain(`${quotaName} (quota)`);
      });

      it('rejects a plan naming a deployment that does not exist, naming that action', async () => {
        const missing = randomUUID();
        const unknown = await submit({ actions: [{ kind: 'scale', deploymentId: first, replicas: 3 }, { kind: 'restart', deploymentId: missing }] });
        expect(unknown.status).to.equal(422);
        expect(unknown.body.errors).to.deep.equal([{ path: 'actions.1', message: `deployment ${missing} does not exist` }]);
        const events = await planEvents(unknown.body.recordedIn!.id);
        expect(events.map((e) => e.type)).to.deep.equal([...judged, 'ActionPlanRejected']);
        // Only the action that could be worked out was judged, under its own index.
        const decision = events[2]!.data as unknown as PolicyDecision;
        expect(decision.evaluations.map((e) => e.index)).to.deep.equal([0]);
        expect(events[3]!.data['violations']).to.deep.equal(unknown.body.errors);
      });

      it('names each action by its own index when one is missing and another breaks policy', async () => {
        const missing = randomUUID();
        const reply = await submit({ actions: [{ kind: 'restart', deploymentId: missing }, { kind: 'scale', deploymentId: second, replicas: 20 }] });
        expect(reply.status).to.equal(422);
        expect(paths(reply), JSON.stringify(reply.body.errors)).to.deep.equal(['actions.0', 'actions.1']);
      });
    });

    // ---- 10. replay -------------------------------------------------------------------------------------

    describe('replay', () => {
      it('replays an earlier decision with its recorded policy-set revision after the policy changed', async () => {
        const { namespace, deploymentId } = await placed({ replicas: 2 });
        const name = unique('replay-quota');
        const id = await createPolicy({ name, type: 'quota', selector: { namespaces: [namespace] }, parameters: { limits: { replicas: 3 } } });
        const refused = await scale(deploymentId, 5);
        expectRefusedBy(refused, name);
        const decisionEvent = (await deploymentEvents(deploymentId)).at(-1)!;
        expect(decisionEvent.type).to.equal('PolicyEvaluated');
        const recordedRevision = (decisionEvent.data as unknown as PolicyDecision).policySet.revision;

        expect((await api.request('patch', `/policies/${id}`, { body: { parameters: { limits: { replicas: 10 } } } })).status).to.equal(202);

        // The replay finds the decision in the log, which shows it once every transaction older than its own has ended.
        await api.head();
        const replay = await api.request<Replay>('get', `/policy-decisions/${decisionEvent.id}/replay`, { as: 'viewer' });
        expect(replay.status, JSON.stringify(replay.body)).to.equal(200);
        expect(replay.body).to.deep.include({ eventId: decisionEvent.id, stream: `deployment-${deploymentId}`, policySetRevision: recordedRevision, matches: true });
        expect(replay.body.replayed.verdict).to.equal('deny');
        expect(replay.body.replayed.evaluations[0]!.results.find((r) => r.policyId === id)!.message).to.contain('over the limit of 3');

        const now = await whatIf({ kind: 'scale', deploymentId, replicas: 5 });
        expect(now.body.verdict).to.equal('allow');
        expect(now.body.policySetRevision).to.be.greaterThan(recordedRevision);
        expect(now.body.results.find((r) => r.policyId === id)).to.deep.include({ outcome: 'pass' });
      });

      it('replays every recorded decision to the same verdict and results, covering every rule type', async () => {
        const ids: string[] = [];
        let after: string | undefined;
        await api.head();
        for (;;) {
          const page = await api.eventStore.readAll({ after, filter: { types: ['PolicyEvaluated'] }, limit: 500 });
          ids.push(...page.events.map((e) => e.id));
          if (page.events.length === 0 || !page.checkpoint || page.checkpoint === after) break;
          after = page.checkpoint;
        }
        expect(ids.length).to.be.greaterThan(0);

        const replays: Replay[] = [];
        for (let i = 0; i < ids.length; i += 8) {
          const batch = await Promise.all(ids.slice(i, i + 8).map((id) => api.request<Replay>('get', `/policy-decisions/${id}/replay`, { as: 'viewer' })));
          for (const reply of batch) {
            expect(reply.status, JSON.stringify(reply.body)).to.equal(200);
            replays.push(reply.body);
          }
        }
        const mismatched = replays.filter((r) => !r.matches).map((r) => ({ eventId: r.eventId, recorded: r.recorded, replayed: r.replayed }));
        expect(mismatched, JSON.stringify(mismatched.slice(0, 2), null, 1)).to.deep.equal([]);

        const results = replays.flatMap((r) => r.replayed.evaluations.flatMap((e) => e.results));
        for (const type of POLICY_TYPES) {
          expect(results.filter((r) => r.type === type), type).to.have.length.greaterThan(0);
          expect(results.filter((r) => r.type === type && r.outcome === 'fail' && r.mode === 'enforce'), `${type} refusals`).to.have.length.greaterThan(0);
        }
        expect(replays.map((r) => r.replayed.verdict)).to.include.members(['allow', 'deny']);
      });

      it('answers 404 for an id that records no decision', async () => {
        const missing = await api.request<Problem>('get', `/policy-decisions/${randomUUID()}/replay`, { as: 'viewer' });
        expect(missing.status).to.equal(404);
        const notADecision = (await api.stream('policyset-global'))[0]!;
        expect((await api.request('get', `/policy-decisions/${notADecision.id}/replay`, { as: 'viewer' })).status).to.equal(404);
        expect((await api.request('get', `/policy-decisions/${randomUUID()}/replay`, { as: 'anonymous' })).status).to.equal(401);
      });
    });
  });
}
