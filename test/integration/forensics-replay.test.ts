// Forensics through the real server: every decision of a window re-run in bulk (all match; after a deliberate change
// of a rule, exactly the decisions whose verdict turns), the impact of a draft policy and of a patch to an existing
// one on a seeded history, the refusals of a bad impact request, and the CLI verbs that run them.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { decisionWindow, replayDecisions, type DecisionReplay, type RuleOverrides } from '../../commands/decision-replay.js';
import type { Impact } from '../../commands/policy-impact.js';
import type { PolicyDecision } from '../../domain/policy-evaluation.js';
import { RULES } from '../../domain/rules/index.js';
import { runCli } from '../support/cli.js';
import { settled } from '../support/events.js';
import { createScratchDatabase, SKIP_POSTGRES_REASON, TEST_DATABASE_URL, type ScratchDatabase } from '../support/postgres.js';
import { startTestApi, type Caller, type TestApi } from '../support/sentinel-api.js';

interface Decision {
  id: string;
  stream: string;
  position: string;
}

interface Problem {
  status: number;
  errors?: { path: string; message: string }[];
}

const backends = [
  { name: 'PGlite', skipReason: undefined },
  { name: 'PostgreSQL', skipReason: TEST_DATABASE_URL ? undefined : SKIP_POSTGRES_REASON },
];

const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ids = (decisions: readonly { eventId: string }[]) => decisions.map((d) => d.eventId);

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const found: T[] = [];
  for await (const item of items) found.push(item);
  return found;
}

/**
 * A deliberate engine change: a quota now refuses a change that lands exactly on its replica limit, where the engine
 * lets it through. Every other result stays as the engine gives it, message included.
 */
const limitMadeExclusive: RuleOverrides = {
  quota: (parameters, change, inputs) => {
    const result = RULES.quota(parameters, change, inputs);
    const onTheLimit = change.after !== undefined && inputs.usage.namespace.replicas + change.after.replicas === parameters.limits.replicas;
    return result.outcome === 'pass' && onTheLimit ? { outcome: 'fail', message: result.message } : result;
  },
};

for (const backend of backends) {
  describe(`forensics: bulk replay and policy impact on ${backend.name}`, function () {
    this.timeout(180_000);
    let api: TestApi | undefined;
    let dataDir: string;
    let scratch: ScratchDatabase | undefined;
    /** What the CLI reads: the database the server uses. */
    let cliEnv: Record<string, string>;

    let clusterId: string;
    const namespaces = { a: unique('ns-a'), b: unique('ns-b'), c: unique('ns-c') };
    let quotaA: { id: string; name: string };
    /** The window: every decision below but the ones before and after it. */
    let window: { from: string; to: string };
    /** Namespace A (quota of 6 replicas, admin's changes) and B (no policy, operator's), in the order they were made. */
    const a: Decision[] = [];
    const b: Decision[] = [];
    const deployments: Record<'d3' | 'd4', string> = { d3: '', d4: '' };
    let outside: { before: Decision; after: Decision };
    const inWindow = () => [...a, ...b].sort((x, y) => (x.position < y.position ? -1 : 1)).map((d) => d.id);

    const server = () => api!;

    async function created(route: string, body: unknown, as: Caller): Promise<string> {
      const reply = await server().request<{ id: string }>('post', route, { as, body });
      expect(reply.status, `${route}: ${JSON.stringify(reply.body)}`).to.be.oneOf([201, 202]);
      return reply.body.id;
    }

    async function lastDecision(deploymentId: string): Promise<Decision> {
      const decision = (await server().stream(`deployment-${deploymentId}`)).filter((e) => e.type === 'PolicyEvaluated').at(-1)!;
      return { id: decision.id, stream: decision.stream, position: decision.position };
    }

    /** A workload of its own in `namespace`, deployed at `replicas`: the deployment's id and its decision. */
    async function deploy(namespace: string, replicas: number, as: Caller): Promise<[string, Decision]> {
      const workloadId = await created(
        '/workloads',
        { name: unique('svc'), namespace, type: 'inference', image: 'registry.local/model:1.0', resources: { cpu: '1', memory: '2Gi' } },
        as,
      );
      const deploymentId = await created('/deployments', { workloadId, clusterId, replicas }, as);
      return [deploymentId, await lastDecision(deploymentId)];
    }

    async function scale(deploymentId: string, replicas: number, as: Caller, status: 202 | 422): Promise<Decision> {
      const reply = await server().request('post', `/deployments/${deploymentId}/scale`, { as, body: { replicas } });
      expect(reply.status, JSON.stringify(reply.body)).to.equal(status);
      return lastDecision(deploymentId);
    }

    async function impact(body: unknown, query = ''): Promise<Impact> {
      const head = await server().head();
      const reply = await server().request<Impact>('post', `/policies/impact${query}`, { body });
      expect(reply.status, JSON.stringify(reply.body)).to.equal(200);
      expect(await server().head(), 'an impact run appended events').to.equal(head);
      return reply.body;
    }

    const draftB = () => ({
      name: unique('draft-cap'),
      type: 'quota',
      mode: 'enforce',
      selector: { namespaces: [namespaces.b, namespaces.c] },
      parameters: { limits: { replicas: 3 } },
    });

    before(async function () {
      if (backend.skipReason) {
        console.log(`      skipped: ${backend.skipReason}`);
        return this.skip();
      }
      dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-forensics-'));
      if (backend.name === 'PostgreSQL') scratch = await createScratchDatabase();
      cliEnv = { SENTINEL_DATA_DIR: dataDir, PORT: '0', TELEMETRY_GRPC_PORT: '0', INFRAMIND_GRPC_PORT: '0', ...(scratch ? { DATABASE_URL: scratch.url } : {}) };
      api = await startTestApi(scratch?.url, { SENTINEL_DATA_DIR: dataDir });

      clusterId = await created(
        '/clusters',
        {
          name: unique('forensics'),
          apiServer: 'https://10.0.0.1:6443',
          credentials: { source: 'kubeconfig-base64', data: Buffer.from('apiVersion: v1\nkind: Config\n').toString('base64') },
          region: 'us-east-1',
        },
        'admin',
      );
      const quotaName = unique('quota-a');
      quotaA = {
        id: await created('/policies', { name: quotaName, type: 'quota', mode: 'enforce', selector: { namespaces: [namespaces.a] }, parameters: { limits: { replicas: 6 } } }, 'admin'),
        name: quotaName,
      };
      const [dc, beforeWindow] = await deploy(namespaces.c, 5, 'admin');
      await sleep(50);
      const from = new Date();
      await sleep(50);

      // Namespace A, quota 6: the comments give the namespace's replicas with the change.
      const [d1, a1] = await deploy(namespaces.a, 2, 'admin'); // 2
      a.push(a1);
      a.push(await scale(d1, 4, 'admin', 202)); // 4
      const [d2, a3] = await deploy(namespaces.a, 2, 'admin'); // 6: on the limit
      a.push(a3);
      a.push(await scale(d2, 3, 'admin', 422)); // 7: refused; within 8
      a.push(await scale(d1, 8, 'admin', 422)); // 10: refused; over 8 too
      a.push(await scale(d1, 3, 'admin', 202)); // 5
      a.push(await scale(d1, 4, 'admin', 202)); // 6: on the limit

      // Namespace B, no policy; the draft caps it at 3.
      const [d3, b1] = await deploy(namespaces.b, 2, 'operator'); // 2
      b.push(b1);
      b.push(await scale(d3, 4, 'operator', 202)); // 4: over 3
      const [d4, b3] = await deploy(namespaces.b, 1, 'operator'); // 5: over 3
      b.push(b3);
      b.push(await scale(d3, 1, 'operator', 202)); // 2
      Object.assign(deployments, { d3, d4 });

      await sleep(50);
      const to = new Date();
      await sleep(50);
      outside = { before: beforeWindow, after: await scale(dc, 6, 'admin', 202) };
      window = { from: from.toISOString(), to: to.toISOString() };
      // A replay reads the log: everything recorded here is visible to it first, whatever is open elsewhere on the server.
      await settled(server().eventStore, outside.after.position);
    });

    after(async () => {
      await api?.stop();
      await scratch?.drop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    describe('bulk replay', () => {
      it('(a) re-runs every decision of the window, and only those, with its recorded inputs and revision: all match', async () => {
        const replays = await all(replayDecisions(server().eventStore, decisionWindow(window)));
        expect(ids(replays)).to.deep.equal(inWindow());
        expect(ids(replays)).not.to.include.members([outside.before.id, outside.after.id]);
        expect(replays.filter((r) => !r.matches)).to.deep.equal([]);
        for (const replay of replays) {
          expect(replay.replayedVerdict).to.equal(replay.recordedVerdict);
          expect(replay.difference).to.equal(null);
        }
        expect(replays.map((r) => r.recordedVerdict)).to.include.members(['allow', 'deny']);
      });

      it('takes the window as log positions too, and keeps to the decisions that evaluated a policy, by id or name', async () => {
        const byPosition = await all(replayDecisions(server().eventStore, decisionWindow({ from: a[0]!.position, to: outside.after.position })));
        expect(ids(byPosition)).to.deep.equal(inWindow());

        for (const policy of [quotaA.id, quotaA.name.toUpperCase()]) {
          const only = await all(replayDecisions(server().eventStore, decisionWindow(window), { policy }));
          expect(ids(only), policy).to.deep.equal(a.map((d) => d.id));
        }
      });

      it('(b) after a deliberate change of the quota rule, reports exactly the decisions whose verdict it turns', async () => {
        const replays = await all(replayDecisions(server().eventStore, decisionWindow(window), { rules: limitMadeExclusive }));
        expect(replays).to.have.length(inWindow().length);
        const mismatched = replays.filter((r) => !r.matches);
        expect(ids(mismatched)).to.deep.equal([a[2]!.id, a[6]!.id]);
        for (const replay of mismatched) {
          expect(replay).to.include({ recordedVerdict: 'allow', replayedVerdict: 'deny' });
          expect(replay.difference).to.deep.include({ evaluation: 0 });
          expect(replay.difference!.recorded).to.include({ policyId: quotaA.id, outcome: 'pass' });
          expect(replay.difference!.replayed).to.include({ policyId: quotaA.id, outcome: 'fail', mode: 'enforce' });
        }
      });
    });

    describe('policy impact', () => {
      it('(c) of a draft quota: names exactly the decisions it would newly refuse, grouped by target, actor and rule', async () => {
        const draft = draftB();
        const answer = await impact({ policy: draft, ...window });
        expect(answer).to.deep.include({ examined: inWindow().length, truncated: false, unchanged: { count: inWindow().length - 2 } });
        expect(answer.policy).to.deep.equal({ id: 'draft', name: draft.name, type: 'quota', mode: 'enforce', change: 'added' });
        expect(answer.newlyAllowed.count).to.equal(0);
        const refused = answer.newlyRefused;
        expect(refused.count).to.equal(2);
        expect(ids(refused.decisions)).to.deep.equal([b[1]!.id, b[2]!.id]);
        refused.decisions.forEach((decision, i) => {
          const replicas = [4, 5][i]!;
          expect(decision.rules).to.deep.equal([
            { policyId: 'draft', name: draft.name, type: 'quota', message: `namespace ${namespaces.b} would exceed its quota: ${replicas} replicas over the limit of 3 replicas` },
          ]);
          expect(decision.actor).to.deep.equal({ id: server().principalIds.operator, kind: 'user' });
        });
        expect(refused.byTarget).to.deep.equal([
          { target: { kind: 'deployment', id: deployments.d3 }, count: 1, eventIds: [b[1]!.id] },
          { target: { kind: 'deployment', id: deployments.d4 }, count: 1, eventIds: [b[2]!.id] },
        ]);
        expect(refused.byActor).to.deep.equal([{ actor: { id: server().principalIds.operator, kind: 'user' }, count: 2, eventIds: [b[1]!.id, b[2]!.id] }]);
        expect(refused.byRule).to.deep.equal([{ policyId: 'draft', name: draft.name, type: 'quota', count: 2, eventIds: [b[1]!.id, b[2]!.id] }]);
      });

      it('(c) of a patch that loosens a policy: names the decisions it would newly let through; of one that disables it, more', async () => {
        const loosened = await impact({ policy: { id: quotaA.id, patch: { parameters: { limits: { replicas: 8 } } } }, ...window });
        expect(loosened.policy).to.include({ id: quotaA.id, change: 'replaced' });
        expect(loosened.newlyRefused.count).to.equal(0);
        expect(ids(loosened.newlyAllowed.decisions)).to.deep.equal([a[3]!.id]);
        expect(loosened.newlyAllowed.decisions[0]!.rules).to.deep.equal([
          { policyId: quotaA.id, name: quotaA.name, type: 'quota', message: `namespace ${namespaces.a} would exceed its quota: 7 replicas over the limit of 6 replicas` },
        ]);
        expect(loosened.newlyAllowed.byRule).to.deep.equal([{ policyId: quotaA.id, name: quotaA.name, type: 'quota', count: 1, eventIds: [a[3]!.id] }]);

        const disabled = await impact({ policy: { id: quotaA.id, patch: { enabled: false } }, ...window });
        expect(ids(disabled.newlyAllowed.decisions)).to.deep.equal([a[3]!.id, a[4]!.id]);
        expect(disabled.unchanged.count).to.equal(inWindow().length - 2);
      });

      it('judges at most maxDecisions, and says when the window held more', async () => {
        const capped = await impact({ policy: draftB(), ...window }, '?maxDecisions=3');
        expect(capped).to.include({ examined: 3, limit: 3, truncated: true });
        const exact = await impact({ policy: draftB(), ...window }, `?maxDecisions=${inWindow().length}`);
        expect(exact).to.include({ examined: inWindow().length, truncated: false });
      });

      it('(d) answers 422 naming the field for a missing window, an unknown policy id or an invalid draft, and appends nothing', async () => {
        const cases: [body: unknown, paths: string[]][] = [
          [{ policy: draftB() }, ['from', 'to']],
          [{ policy: draftB(), from: window.from }, ['to']],
          [{ policy: draftB(), from: window.to, to: window.from }, ['to']],
          [{ policy: draftB(), from: 'yesterday', to: window.to }, ['from']],
          [{ from: window.from, to: window.to }, ['policy']],
          [{ policy: { id: randomUUID(), patch: { priority: 5 } }, ...window }, ['policy.id']],
          [{ policy: { id: quotaA.id, patch: { parameters: { limits: { replicas: -1 } } } }, ...window }, ['policy.patch.parameters.limits.replicas']],
          [{ policy: { ...draftB(), parameters: { limits: {} } }, ...window }, ['policy.parameters.limits']],
          [{ policy: { ...draftB(), type: 'speed_limit' }, ...window }, ['policy.type']],
          [{ policy: { ...draftB(), extra: true } }, ['from', 'to', 'policy.extra']],
        ];
        const head = await server().head();
        for (const [body, paths] of cases) {
          const reply = await server().request<Problem>('post', '/policies/impact', { body });
          const said = `${JSON.stringify(body)} → ${reply.status} ${JSON.stringify(reply.body)}`;
          expect(reply.status, said).to.equal(422);
          expect(reply.body.errors!.map((e) => e.path), said).to.have.members(paths);
        }
        const badCap = await server().request<Problem>('post', '/policies/impact?maxDecisions=0', { body: { policy: draftB(), ...window } });
        expect(badCap.status).to.equal(400);
        expect(badCap.body.errors!.map((e) => e.path)).to.deep.equal(['maxDecisions']);
        for (const as of ['operator', 'viewer', 'system'] as const) {
          expect((await server().request('post', '/policies/impact', { as, body: { policy: draftB(), ...window } })).status, as).to.equal(403);
        }
        expect(await server().head()).to.equal(head);
      });

      it('sentinel policies impact: asks the running server, prints the answer as JSON or as a report', async () => {
        const file = path.join(dataDir, 'draft.json');
        const draft = draftB();
        await writeFile(file, JSON.stringify(draft));
        const env = { SENTINEL_URL: server().url, SENTINEL_TOKEN: server().tokens.admin };
        const args = ['policies', 'impact', '--file', file, '--from', window.from, '--to', window.to];

        const json = await runCli([...args, '--json'], env);
        expect(json.code, json.stderr).to.equal(0);
        const answer = JSON.parse(json.stdout) as Impact;
        expect(ids(answer.newlyRefused.decisions)).to.deep.equal([b[1]!.id, b[2]!.id]);

        const report = await runCli(args, env);
        expect(report.code, report.stderr).to.equal(0);
        expect(report.stdout).to.include(`newly refused: 2, newly allowed: 0, unchanged: ${inWindow().length - 2}`);
        expect(report.stdout).to.include(b[1]!.id).and.include(`deployment/${deployments.d3}`).and.include(draft.name);

        const refused = await runCli(['policies', 'impact', '--file', file, '--from', window.from, '--to', 'later'], env);
        expect(refused.code).to.equal(1);
        expect(refused.stderr).to.include('(422)').and.include('to: an ISO 8601 date-time');
      });
    });

    describe('sentinel decisions replay', () => {
      it('prints a JSON line per decision that no longer matches and a summary; exits 0 when all match, 1 naming an edited decision', async () => {
        // An edited record: a copy of an allowed decision made to say its quota refused it.
        const original = (await server().stream(a[2]!.stream)).find((e) => e.id === a[2]!.id)!;
        const data = structuredClone(original.data) as unknown as PolicyDecision;
        data.verdict = 'deny';
        data.evaluations[0]!.verdict = 'deny';
        data.evaluations[0]!.results = data.evaluations[0]!.results.map((r) => (r.policyId === quotaA.id ? { ...r, outcome: 'fail' } : r));
        const edited = randomUUID();
        await server().eventStore.append(`deployment-${randomUUID()}`, [
          { id: edited, type: 'PolicyEvaluated', schemaVersion: 2, data: data as unknown as Record<string, unknown>, metadata: original.metadata },
        ]);
        await server().head();
        // Embedded PGlite is one process's alone: the server lets go of it first.
        await api!.stop();
        api = undefined;

        const byPosition = await runCli(['decisions', 'replay', '--from', a[0]!.position, '--to', outside.after.position, '--policy', quotaA.name, '--json'], cliEnv);
        expect(byPosition.code, byPosition.stderr).to.equal(0);
        expect(byPosition.stdout.trim().split('\n'), 'the summary alone').to.have.length(1);
        expect(JSON.parse(byPosition.stdout)).to.include({ from: a[0]!.position, replayed: a.length, matched: a.length, mismatched: 0, policy: quotaA.name });

        const later = await runCli(['decisions', 'replay', '--from', window.to, '--to', new Date(Date.now() + 60_000).toISOString()], cliEnv);
        expect(later.code, later.stdout).to.equal(1);
        const lines = later.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
        expect(lines).to.have.length(2);
        const [mismatch, summary] = lines as [DecisionReplay, Record<string, unknown>];
        expect(mismatch).to.include({ eventId: edited, recordedVerdict: 'deny', replayedVerdict: 'allow', matches: false });
        expect(mismatch.difference!.recorded).to.include({ policyId: quotaA.id, outcome: 'fail' });
        expect(mismatch.difference!.replayed).to.include({ policyId: quotaA.id, outcome: 'pass' });
        expect(summary).to.include({ replayed: 2, matched: 1, mismatched: 1 });
        expect(later.stderr).to.include('1 of 2 decisions no longer match their record');

        const usage = await runCli(['decisions', 'replay', '--from', 'yesterday', '--to', window.to], cliEnv);
        expect(usage.code).to.equal(2);
        expect(usage.stderr).to.include('--from: an ISO 8601 date-time');
      });
    });
  });
}
