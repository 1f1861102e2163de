// The InfraMind link through real gRPC against a running Sentinel: authentication, hello and resume, the bounded
// window of unacknowledged events, plan acknowledgements by nonce, one session per identity, and a run of plans and
// events with connections dropped at random points, after which nothing is lost, repeated or doubled.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { pino } from 'pino';
import {
  inframindClient,
  type InfraMindClient,
  type InfraMindMessageOut,
  type LinkEvent,
  type PlanAck,
  type ProtoPlanActionOut,
  type SentinelMessage,
} from '../../adapters/grpc/inframind-proto.js';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { openPglite } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { ActionPlanCommands } from '../../commands/action-plan-commands.js';
import { systemClock } from '../../commands/clock.js';
import { CommandHandler } from '../../commands/command-handler.js';
import { FleetFacts } from '../../commands/fleet-facts.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import type { Principal } from '../../domain/access.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import { LINKED_STREAM_PREFIXES, startInframindLink, type RunningInframindLink } from '../../reactors/inframind/link.js';
import { Guardrails } from '../../reactors/inframind/guardrails.js';
import { FleetObservations, type ObservedPoint } from '../../reactors/inframind/observations.js';
import { PlanIntake } from '../../reactors/inframind/plan-intake.js';
import { SampleStore } from '../../telemetry/sample-store.js';
import { startInframindSim } from '../../inframind-sim/client.js';
import { eventually } from '../support/eventually.js';
import { backends, type TestApi } from '../support/sentinel-api.js';

const MAX_UNACKED = 4;

/** What a connection has seen so far; `next()` waits for the next message or for the end of the stream. */
class Connection {
  readonly messages: SentinelMessage[] = [];
  status: grpc.StatusObject | undefined;
  private read = 0;
  private wake: (() => void) | undefined;
  readonly call: grpc.ClientDuplexStream<InfraMindMessageOut, SentinelMessage>;

  constructor(client: InfraMindClient, token: string | null, onMessage?: (message: SentinelMessage, connection: Connection) => void) {
    const metadata = new grpc.Metadata();
    if (token) metadata.set('authorization', `Bearer ${token}`);
    this.call = client.connect(metadata);
    this.call.on('data', (message: SentinelMessage) => {
      this.messages.push(message);
      onMessage?.(message, this);
      this.poke();
    });
    this.call.on('error', (error: grpc.ServiceError) => {
      this.status = { code: error.code, details: error.details, metadata: error.metadata };
      this.poke();
    });
    this.call.on('status', (status: grpc.StatusObject) => {
      this.status ??= status;
      this.poke();
    });
  }

  send(message: InfraMindMessageOut): void {
    this.call.write(message);
  }

  async next(): Promise<SentinelMessage | grpc.StatusObject> {
    while (this.read >= this.messages.length && !this.status) await new Promise<void>((resolve) => (this.wake = resolve));
    return this.read < this.messages.length ? this.messages[this.read++]! : this.status!;
  }

  /** The next message, which must be of `body`. */
  async expect<B extends SentinelMessage['body']>(body: B): Promise<Extract<SentinelMessage, { body: B }>> {
    const message = await this.next();
    expect('body' in message ? message.body : `stream ended: ${JSON.stringify(message)}`).to.equal(body);
    return message as Extract<SentinelMessage, { body: B }>;
  }

  async ended(): Promise<grpc.StatusObject> {
    for (;;) {
      const message = await this.next();
      if (!('body' in message)) return message;
    }
  }

  private poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/** A deterministic generator, so a failing run can be repeated with its seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1_664_525 + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

const linked = (events: RecordedEvent[]) => events.filter((event) => LINKED_STREAM_PREFIXES.some((prefix) => event.stream.startsWith(prefix)));

for (const backend of backends) describe(`InfraMind link over gRPC on ${backend.name}`, function () {
  this.timeout(60_000);
  let api: TestApi;
  let link: RunningInframindLink;
  let client: InfraMindClient;
  let clusterId: string;
  let plans: ActionPlanCommands;
  let handler: CommandHandler;
  let authenticate: (token: string) => Promise<Principal>;
  const open: Connection[] = [];
  /** What the fleet looks like to the link's observations. */
  const fleet = { points: [] as ObservedPoint[], fleetCostMicroUsdPerHour: 0, observedAt: new Date('2026-03-01T12:00:00Z') };

  before(async function () {
    if (backend.skipReason) {
      console.log(`      SKIP: ${backend.skipReason}`);
      this.skip();
    }
    api = await backend.start();
    handler = new CommandHandler(api.eventStore);
    const policy = new PolicyEngine(api.eventStore, { prices: DEFAULT_PRICES, health: noHealth });
    plans = new ActionPlanCommands(handler, systemClock, policy, new FleetFacts(handler), { defaultTtlSeconds: 600 });
    // The running Sentinel answers who a token belongs to, as its access service does for its own gRPC ingest.
    authenticate = async (token: string): Promise<Principal> => {
      const reply = await fetch(`${api.url}/auth/me`, { headers: { authorization: `Bearer ${token}` } });
      if (reply.status !== 200) throw new Error(`token refused: ${reply.status}`);
      return (await reply.json()) as Principal;
    };
    link = await startInframindLink({
      host: '127.0.0.1',
      port: 0,
      store: api.eventStore,
      intake: new PlanIntake(plans, handler),
      handler,
      authenticate,
      maxUnacknowledged: MAX_UNACKED,
      // Sent when the test asks (observeNow), never by the clock during a run.
      observations: { source: { observe: async () => ({ ...fleet }) }, intervalMs: 3_600_000, maxPoints: 3 },
      logger: pino({ level: process.env['TEST_LOG'] ?? 'silent' }),
    });
    client = inframindClient(`127.0.0.1:${link.port}`);
    clusterId = await registerCluster('gpu-link');
  });

  const registerCluster = async (name: string): Promise<string> => {
    const cluster = await api.request<{ id: string }>('post', '/clusters', {
      body: {
        name,
        apiServer: 'https://10.0.0.1:6443',
        credentials: { source: 'kubeconfig-base64', data: Buffer.from('apiVersion: v1\nkind: Config\n').toString('base64') },
        region: 'us-east-1',
        gpuSkus: ['nvidia-a100-80gb'],
      },
    });
    expect(cluster.status, JSON.stringify(cluster.body)).to.equal(201);
    return cluster.body.id;
  };

  afterEach(() => {
    for (const connection of open.splice(0)) connection.call.cancel();
  });

  after(async () => {
    client?.close();
    await link?.stop();
    await api?.stop();
  });

  const connect = (token: string | null = api.tokens.system, onMessage?: (message: SentinelMessage, connection: Connection) => void) => {
    const connection = new Connection(client, token, onMessage);
    open.push(connection);
    return connection;
  };

  const hello = async (connection: Connection, inframindId: string, resumeAfter = '') => {
    connection.send({ hello: { inframindId, version: 'test', resumeAfter } });
    return (await connection.expect('hello')).hello;
  };

  const drain = (node: string): ProtoPlanActionOut => ({ drain: { clusterId, node } });
  const plan = (actions: ProtoPlanActionOut[], planId: string = randomUUID(), nonce: string = randomUUID()) => ({
    plan: { planId, nonce, reason: 'inframind link test', actions, ttlSeconds: 600 },
  });

  /** The acknowledgement of the submission with `nonce`, past whatever else comes down before it. */
  const ackOf = async (connection: Connection, nonce: string): Promise<PlanAck> => {
    for (;;) {
      const message = await connection.next();
      if (!('body' in message)) throw new Error(`stream ended: ${message.details}`);
      if (message.body === 'planAck' && message.planAck.nonce === nonce) return message.planAck;
    }
  };

  /** The next message of `body`, past events (each acknowledged, so the window stays open). */
  const nextOf = async <B extends SentinelMessage['body']>(connection: Connection, body: B): Promise<Extract<SentinelMessage, { body: B }>> => {
    for (;;) {
      const message = await connection.next();
      if (!('body' in message)) throw new Error(`stream ended: ${message.details}`);
      if (message.body === body) return message as Extract<SentinelMessage, { body: B }>;
      if (message.body === 'event') connection.send({ ack: { position: message.event.position } });
    }
  };

  describe('authentication', () => {
    it('refuses a stream without a token', async () => {
      const status = await connect(null).ended();
      expect(status.code).to.equal(grpc.status.UNAUTHENTICATED);
      expect(status.details).to.contain('Bearer');
    });

    it('refuses a person, even an admin', async () => {
      const status = await connect(api.tokens.admin).ended();
      expect(status.code).to.equal(grpc.status.PERMISSION_DENIED);
      expect(status.details).to.contain('only service accounts');
    });

    it('refuses a token that is not valid', async () => {
      const status = await connect('not-a-token').ended();
      expect(status.code).to.equal(grpc.status.UNAUTHENTICATED);
    });
  });

  describe('protocol', () => {
    it('refuses a stream whose first message is not a hello', async () => {
      const connection = connect();
      connection.send({ ack: { position: '' } });
      const status = await connection.ended();
      expect(status.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(status.details).to.equal('the first message must be a hello');
    });

    it('refuses a resume position the store never gave', async () => {
      const connection = connect();
      connection.send({ hello: { inframindId: 'im-bad-position', resumeAfter: 'yesterday' } });
      const status = await connection.ended();
      expect(status.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(status.details).to.match(/^hello\.resumeAfter: invalid position "yesterday"/);
    });

    it('refuses an acknowledgement of something never sent', async () => {
      const head = await api.head();
      const connection = connect();
      await hello(connection, 'im-ack-ahead', head);
      connection.send({ ack: { position: 'ffffffffffffffff-ffffffffffffffff' } });
      const status = await connection.ended();
      expect(status.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(status.details).to.contain('lies past the last event sent');
    });
  });

  describe('events down, from the position InfraMind names', () => {
    it('sends the events after the resume position in order, and no more than the window until they are acknowledged', async () => {
      const start = await api.head();
      const planIds = Array.from({ length: 3 }, () => randomUUID());
      for (const id of planIds) {
        const submitted = connect();
        await hello(submitted, `im-submitter-${id}`, start);
        submitted.send(plan([drain(`node-${id.slice(0, 8)}`)], id, `nonce-${id}`));
        await ackOf(submitted, `nonce-${id}`);
        submitted.call.cancel();
      }
      const expected = linked(await api.eventsSince(start));
      expect(expected.length).to.be.greaterThan(MAX_UNACKED);

      const connection = connect();
      const greeting = await hello(connection, 'im-window', start);
      expect(greeting).to.include({ resumeAfter: start, maxUnacknowledged: MAX_UNACKED });
      const first: LinkEvent[] = [];
      for (let i = 0; i < MAX_UNACKED; i++) first.push((await connection.expect('event')).event);
      expect(first.map((event) => event.id)).to.deep.equal(expected.slice(0, MAX_UNACKED).map((event) => event.id));
      expect(first.map((event) => event.position)).to.deep.equal(expected.slice(0, MAX_UNACKED).map((event) => event.position));

      // A plan's round trip appends events; none of them may come down while the window is full.
      connection.send(plan([drain('node-window')]));
      await connection.expect('planAck');
      expect(connection.messages.filter((message) => message.body === 'event')).to.have.length(MAX_UNACKED);

      connection.send({ ack: { position: first.at(-1)!.position } });
      const next = await connection.expect('event');
      expect(next.event.id).to.equal(expected[MAX_UNACKED]!.id);
      expect(JSON.parse(next.event.dataJson)).to.deep.equal(expected[MAX_UNACKED]!.data);
    });

    it('gives a second connection of the same InfraMind the session, and ends the first with ABORTED', async () => {
      const start = await api.head();
      const first = connect();
      const firstHello = await hello(first, 'im-single', start);
      const second = connect();
      const secondHello = await hello(second, 'im-single', start);
      expect(secondHello.sessionId).to.not.equal(firstHello.sessionId);
      const status = await first.ended();
      expect(status.code).to.equal(grpc.status.ABORTED);
      expect(status.details).to.contain('replaced');
      expect(link.sessions().filter((id) => id === 'im-single')).to.have.length(1);
    });
  });

  describe('plans up, acknowledged by nonce', () => {
    let connection: Connection;
    beforeEach(async () => {
      // Resumed at the head, and acknowledging every event, so events never hold up what a test waits for.
      connection = connect(api.tokens.system, (message, self) => {
        if (message.body === 'event') self.send({ ack: { position: message.event.position } });
      });
      await hello(connection, `im-plans-${randomUUID()}`, await api.head());
    });

    it('accepts a plan with its id, records it with source inframind, and answers a resubmission the same without appending', async () => {
      const planId = randomUUID();
      connection.send(plan([drain('node-a')], planId, 'nonce-1'));
      const accepted = await ackOf(connection, 'nonce-1');
      expect(accepted).to.include({ planId, verdict: 'ACCEPTED', nonce: 'nonce-1' });
      expect(accepted.violations).to.deep.equal([]);
      const recorded = await api.stream(`plan-${planId}`);
      expect(recorded.map((event) => event.type)).to.deep.equal([
        'ActionPlanSubmitted',
        'ActionPlanValidationStarted',
        'PolicyEvaluated',
        'ActionPlanApproved',
      ]);
      expect(recorded[0]!.data['source']).to.equal('inframind');
      expect(accepted.position).to.equal(recorded.at(-1)!.position);

      connection.send(plan([drain('node-a')], planId, 'nonce-2'));
      const again = await ackOf(connection, 'nonce-2');
      expect({ ...again, nonce: 'nonce-1' }).to.deep.equal(accepted);
      expect(await api.stream(`plan-${planId}`)).to.have.length(recorded.length);
    });

    it('rejects a plan policy or the fleet refuses, with each violation, and records the rejection', async () => {
      const planId = randomUUID();
      const missing = randomUUID();
      connection.send(plan([{ scale: { deploymentId: missing, replicas: 3 } }], planId, 'nonce-r'));
      const rejected = await ackOf(connection, 'nonce-r');
      expect(rejected).to.include({ planId, verdict: 'REJECTED' });
      expect(rejected.violations).to.have.length(1);
      expect(rejected.violations[0]!.path).to.equal('actions.0');
      expect(rejected.violations[0]!.message).to.contain(missing);
      const recorded = await api.stream(`plan-${planId}`);
      expect(recorded.at(-1)!.type).to.equal('ActionPlanRejected');
      expect(rejected.position).to.equal(recorded.at(-1)!.position);
    });

    it('rejects a malformed submission with what is wrong, and records nothing', async () => {
      const head = await api.head();
      connection.send({ plan: { planId: 'plan-7', nonce: 'nonce-bad', reason: '', actions: [{ scale: { deploymentId: 'web', replicas: 2 } }, {} as ProtoPlanActionOut] } });
      const rejected = await ackOf(connection, 'nonce-bad');
      expect(rejected.verdict).to.equal('REJECTED');
      expect(rejected.position).to.equal('');
      const paths = rejected.violations.map((violation) => violation.path);
      expect(paths).to.include.members(['planId', 'reason', 'actions.0.deploymentId', 'actions.1.kind']);
      expect(await api.head()).to.equal(head);
    });

    it('refuses a plan id a person already used, without touching that plan', async () => {
      const created = await api.request<{ id: string }>('post', '/action-plans', {
        as: 'operator',
        body: { reason: 'a person’s plan', actions: [{ kind: 'drain', clusterId, node: 'node-person' }], ttlSeconds: 600 },
      });
      expect(created.status, JSON.stringify(created.body)).to.equal(202);
      const before = await api.stream(`plan-${created.body.id}`);
      connection.send(plan([drain('node-person')], created.body.id, 'nonce-taken'));
      const rejected = await ackOf(connection, 'nonce-taken');
      expect(rejected.verdict).to.equal('REJECTED');
      expect(rejected.violations[0]!.message).to.contain('already submitted');
      expect(await api.stream(`plan-${created.body.id}`)).to.have.length(before.length);
    });
  });

  describe('observations and outcomes down', () => {
    it('sends each observation to every session, in messages of at most the configured points', async () => {
      const connection = connect();
      await hello(connection, `im-observer-${randomUUID()}`, await api.head());
      fleet.points = Array.from({ length: 7 }, (_, i) => ({ metric: 'DCGM_FI_DEV_GPU_UTIL', labels: { node: `gpu-${i}`, gpu: '0' }, value: i * 10 }));
      fleet.fleetCostMicroUsdPerHour = 12_345_678;
      await link.observeNow();
      const parts = [await nextOf(connection, 'observation'), await nextOf(connection, 'observation'), await nextOf(connection, 'observation')];
      expect(parts.map((part) => part.observation.points.length)).to.deep.equal([3, 3, 1]);
      expect(parts.flatMap((part) => part.observation.points)).to.deep.equal(fleet.points);
      expect(parts.every((part) => part.observation.fleetCostMicroUsdPerHour === 12_345_678)).to.equal(true);
      expect(parts.every((part) => part.observation.observedAtUnixMs === fleet.observedAt.getTime())).to.equal(true);
      const sequences = parts.map((part) => part.observation.sequence);
      expect(sequences).to.deep.equal([...sequences].sort((a, b) => a - b));
    });

    it('reports what became of an InfraMind plan, with its effect on each target, right after the event that ended it', async () => {
      const workload = await api.request<{ id: string }>('post', '/workloads', {
        body: { name: `outcome-${randomUUID().slice(0, 8)}`, namespace: 'ml-outcome', type: 'inference', image: 'registry.local/llm:1', resources: { cpu: '2', memory: '4Gi' } },
      });
      expect(workload.status, JSON.stringify(workload.body)).to.equal(201);
      const deployment = await api.request<{ id: string }>('post', '/deployments', { body: { workloadId: workload.body.id, clusterId, replicas: 2 } });
      expect(deployment.status, JSON.stringify(deployment.body)).to.be.oneOf([201, 202]);
      const connection = connect();
      await hello(connection, `im-outcomes-${randomUUID()}`, await api.head());
      const planId = randomUUID();
      connection.send(plan([{ scale: { deploymentId: deployment.body.id, replicas: 3 } }, drain('node-outcome')], planId, 'nonce-outcome'));
      const ack = (await nextOf(connection, 'planAck')).planAck;
      expect(ack.verdict, JSON.stringify(ack.violations)).to.equal('ACCEPTED');
      const cancelled = await api.request('post', `/action-plans/${planId}/cancel`, { as: 'operator', body: { reason: 'not now' } });
      expect(cancelled.status, JSON.stringify(cancelled.body)).to.equal(202);

      const outcome = (await nextOf(connection, 'outcome')).outcome;
      const recorded = await api.stream(`plan-${planId}`);
      expect(outcome).to.deep.include({ position: recorded.at(-1)!.position, planId, result: 'CANCELLED', cause: 'not now' });
      const events = connection.messages.filter((message) => message.body === 'event');
      expect(events.at(-1)!.body === 'event' && events.at(-1)!.event.type).to.equal('ActionPlanCancelled');

      // The cost the plan was judged with: the deployment's price per hour at 2 replicas and at 3.
      const judged = recorded.find((event) => event.type === 'PolicyEvaluated')!.data as { evaluations: { index: number; inputs: { cost: Record<string, number> } }[] };
      const cost = judged.evaluations.find((evaluation) => evaluation.index === 0)!.inputs.cost;
      const [scale, drained] = outcome.effects;
      expect(scale).to.deep.equal({
        action: 0,
        targetKind: 'deployment',
        targetId: deployment.body.id,
        replicasDesired: 2,
        replicasReady: 0,
        health: 'Pending',
        costBeforeMicroUsdPerHour: Math.round(cost['targetHourlyUsdBefore']! * 1_000_000),
        costAfterMicroUsdPerHour: Math.round(cost['targetHourlyUsdAfter']! * 1_000_000),
      });
      expect(scale!.costAfterMicroUsdPerHour).to.be.greaterThan(scale!.costBeforeMicroUsdPerHour);
      expect(drained).to.include({ action: 1, targetKind: 'cluster', targetId: clusterId, health: '' });
    });
  });

  describe('the autonomy kill switch', () => {
    it('lets only an admin pause and resume autonomy', async () => {
      expect((await api.request('post', '/autonomy/pause', { as: 'operator', body: { reason: 'no' } })).status).to.equal(403);
      expect((await api.request('post', '/autonomy/pause', { as: 'system', body: { reason: 'no' } })).status).to.equal(403);
      expect((await api.request('post', '/autonomy/resume', { as: 'viewer' })).status).to.equal(403);
      expect((await api.request('post', '/autonomy/pause', { body: {} })).status).to.equal(400);
    });

    it('refuses InfraMind plans while paused, records each refusal as a rejected plan, and takes them again once resumed', async () => {
      const connection = connect(api.tokens.system, (message, self) => {
        if (message.body === 'event') self.send({ ack: { position: message.event.position } });
      });
      await hello(connection, `im-paused-${randomUUID()}`, await api.head());
      const pause = await api.request<{ position: string }>('post', '/autonomy/pause', { body: { reason: 'forecasts look wrong' } });
      expect(pause.status, JSON.stringify(pause.body)).to.equal(202);
      try {
        const refusedId = randomUUID();
        connection.send(plan([drain('node-paused')], refusedId, 'nonce-paused'));
        const refused = await ackOf(connection, 'nonce-paused');
        expect(refused.verdict).to.equal('REJECTED');
        expect(refused.violations).to.have.length(1);
        expect(refused.violations[0]!.path).to.equal('source');
        expect(refused.violations[0]!.message).to.contain('autonomy is paused').and.contain('forecasts look wrong');
        const recorded = await api.stream(`plan-${refusedId}`);
        expect(recorded.at(-1)!.type).to.equal('ActionPlanRejected');

        // A person's plan is not InfraMind's: the switch does not touch it.
        const person = await api.request('post', '/action-plans', {
          as: 'operator',
          body: { reason: 'by hand', actions: [{ kind: 'drain', clusterId, node: 'node-by-hand' }], ttlSeconds: 600 },
        });
        expect(person.status, JSON.stringify(person.body)).to.equal(202);
      } finally {
        expect((await api.request('post', '/autonomy/resume', { body: { reason: 'checked' } })).status).to.equal(202);
      }
      const takenId = randomUUID();
      connection.send(plan([drain('node-resumed')], takenId, 'nonce-resumed'));
      expect((await ackOf(connection, 'nonce-resumed')).verdict).to.equal('ACCEPTED');
      expect((await api.stream('autonomy-global')).map((event) => event.type).slice(-2)).to.deep.equal(['AutonomyPaused', 'AutonomyResumed']);
    });
  });

  describe('the reference optimizer (npm run inframind-sim)', () => {
    it('scales a busy inference deployment up once, through a reconnect in the middle of it', async () => {
      const workload = await api.request<{ id: string }>('post', '/workloads', {
        body: { name: 'llm-serve', namespace: 'ml-sim', type: 'inference', image: 'registry.local/llm:1', resources: { cpu: '1', memory: '1Gi' } },
      });
      expect(workload.status, JSON.stringify(workload.body)).to.equal(201);
      const deployment = await api.request<{ id: string }>('post', '/deployments', { body: { workloadId: workload.body.id, clusterId, replicas: 2 } });
      expect(deployment.status, JSON.stringify(deployment.body)).to.be.oneOf([201, 202]);
      const known = linked(await api.eventsSince(undefined)).at(-1)!.position;

      const acks: { planId: string; verdict: string }[] = [];
      const sim = startInframindSim({
        address: `127.0.0.1:${link.port}`,
        token: api.tokens.system,
        inframindId: 'sim-test',
        settings: { scaleUpAbove: 80, scaleDownBelow: 30, cooldownMs: 3_600_000, minReplicas: 1, maxReplicas: 5 },
        logger: pino({ level: process.env['TEST_LOG'] ?? 'silent' }),
        onPlanAck: (planId, verdict) => acks.push({ planId, verdict }),
        reconnect: { initialDelayMs: 10, maxDelayMs: 100 },
      });
      try {
        await eventually('the simulator has read the deployment', async () => sim.processed, (processed) => processed >= known, 20_000);
        fleet.points = [0, 1].map((gpu) => ({ metric: 'DCGM_FI_DEV_GPU_UTIL', labels: { namespace: 'ml-sim', pod: `llm-serve-5f7d-${gpu}`, gpu: String(gpu) }, value: 95 }));
        await link.observeNow();
        // Another connection under the simulator's identity takes its session away; the simulator reconnects and resumes.
        const intruder = connect();
        await hello(intruder, 'sim-test', await api.head());
        intruder.call.cancel();
        await eventually('the plan is acknowledged', async () => acks.length, (count) => count > 0, 20_000);
        const planId = acks[0]!.planId;
        expect(acks.every((ack) => ack.planId === planId)).to.equal(true);
        const plans = (await api.eventsSince(known)).filter((event) => event.type === 'ActionPlanSubmitted' && event.data['source'] === 'inframind');
        expect(plans.map((event) => event.data['planId'])).to.deep.equal([planId]);
        expect(plans[0]!.data['actions']).to.deep.equal([{ kind: 'scale', deploymentId: deployment.body.id, replicas: 3 }]);
        expect(await api.stream(`plan-${planId}`)).to.have.length(4);
      } finally {
        sim.stop();
        fleet.points = [];
      }
    });
  });

  describe('guardrails', () => {
    const clock = { ms: Date.now() };
    let guarded: RunningInframindLink | undefined;
    let guardedClient: InfraMindClient | undefined;

    /** A link of its own whose intake judges with guardrails on a clock the test moves. */
    const startGuarded = async (plansPerMinute: number) => {
      const guardrails = new Guardrails({ staleAfterMs: 60_000, plansPerMinute, now: () => clock.ms });
      guarded = await startInframindLink({
        host: '127.0.0.1',
        port: 0,
        store: api.eventStore,
        intake: new PlanIntake(plans, handler, guardrails),
        handler,
        authenticate,
        maxUnacknowledged: MAX_UNACKED,
        guardrails,
        observations: { source: { observe: async () => ({ ...fleet }) }, intervalMs: 3_600_000 },
        logger: pino({ level: process.env['TEST_LOG'] ?? 'silent' }),
      });
      guardedClient = inframindClient(`127.0.0.1:${guarded.port}`);
      const connection = new Connection(guardedClient, api.tokens.system, (message, self) => {
        if (message.body === 'event') self.send({ ack: { position: message.event.position } });
      });
      open.push(connection);
      await hello(connection, `im-guarded-${randomUUID()}`, await api.head());
      return connection;
    };

    afterEach(async () => {
      guardedClient?.close();
      await guarded?.stop();
    });

    const submitted = async (connection: Connection, actions: ProtoPlanActionOut[], basedOnObservation = 0) => {
      const planId = randomUUID();
      const nonce = randomUUID();
      connection.send({ plan: { planId, nonce, reason: 'guardrail test', actions, ttlSeconds: 600, basedOnObservation } });
      const ack = await ackOf(connection, nonce);
      return { ack, recorded: await api.stream(`plan-${planId}`) };
    };

    it('refuses a plan based on a stale or unknown observation, and records the refusal', async () => {
      const connection = await startGuarded(1_000);
      const cluster = await registerCluster(`gpu-stale-${randomUUID().slice(0, 8)}`);
      fleet.observedAt = new Date(clock.ms - 120_000);
      await guarded!.observeNow();
      const old = (await nextOf(connection, 'observation')).observation.sequence;
      const stale = await submitted(connection, [{ drain: { clusterId: cluster, node: 'node-1' } }], old);
      expect(stale.ack.verdict).to.equal('REJECTED');
      expect(stale.ack.violations).to.deep.equal([
        { path: 'basedOnObservation', message: `observation ${old} of ${fleet.observedAt.toISOString()} is older than 60 s: the plan is stale; base it on a newer observation` },
      ]);
      expect(stale.recorded.at(-1)!.type).to.equal('ActionPlanRejected');

      const unknown = await submitted(connection, [{ drain: { clusterId: cluster, node: 'node-1' } }], 999_999);
      expect(unknown.ack.violations[0]!.message).to.contain('observation 999999 is unknown here');

      fleet.observedAt = new Date(clock.ms - 1_000);
      await guarded!.observeNow();
      const fresh = (await nextOf(connection, 'observation')).observation.sequence;
      expect((await submitted(connection, [{ drain: { clusterId: cluster, node: 'node-1' } }], fresh)).ack.verdict).to.equal('ACCEPTED');
    });

    it('refuses a plan for a target with a plan in flight, until that plan has ended', async () => {
      const connection = await startGuarded(1_000);
      const cluster = await registerCluster(`gpu-busy-${randomUUID().slice(0, 8)}`);
      const first = await submitted(connection, [{ drain: { clusterId: cluster, node: 'node-1' } }]);
      expect(first.ack.verdict).to.equal('ACCEPTED');
      const second = await submitted(connection, [{ drain: { clusterId: cluster, node: 'node-2' } }]);
      expect(second.ack.verdict).to.equal('REJECTED');
      expect(second.ack.violations[0]!.path).to.equal('actions.0');
      expect(second.ack.violations[0]!.message).to.contain(`plan ${first.ack.planId} is still in flight on cluster ${cluster}`);
      expect(second.recorded.at(-1)!.type).to.equal('ActionPlanRejected');

      const cancelled = await api.request('post', `/action-plans/${first.ack.planId}/cancel`, { as: 'operator', body: { reason: 'make room' } });
      expect(cancelled.status).to.equal(202);
      // Once InfraMind hears that the plan ended, a plan proposed on that news is not refused as in flight.
      for (;;) {
        const { event } = await nextOf(connection, 'event');
        connection.send({ ack: { position: event.position } });
        if (event.type === 'ActionPlanCancelled' && event.stream === `plan-${first.ack.planId}`) break;
      }
      expect((await submitted(connection, [{ drain: { clusterId: cluster, node: 'node-3' } }])).ack.verdict).to.equal('ACCEPTED');
    });

    it('refuses plans beyond the rate, and takes them again a minute later', async () => {
      const connection = await startGuarded(2);
      const scale = (): ProtoPlanActionOut[] => [{ scale: { deploymentId: randomUUID(), replicas: 1 } }];
      for (let i = 0; i < 2; i++) {
        const { ack } = await submitted(connection, scale());
        expect(ack.violations.map((v) => v.path)).to.deep.equal(['actions.0']);
      }
      const limited = await submitted(connection, scale());
      expect(limited.ack.verdict).to.equal('REJECTED');
      expect(limited.ack.violations[0]).to.deep.equal({ path: 'planId', message: 'InfraMind submitted more than 2 plans in the last minute; submit fewer, larger plans or wait' });
      expect(limited.recorded.at(-1)!.type).to.equal('ActionPlanRejected');
      clock.ms += 61_000;
      const later = await submitted(connection, scale());
      expect(later.ack.violations.map((v) => v.path)).to.deep.equal(['actions.0']);
    });
  });

  it('loses, repeats and doubles nothing when connections drop at random points under a stream of plans and events', async () => {
    const seed = Number(process.env['INFRAMIND_TEST_SEED'] ?? Date.now() % 100_000);
    const chance = random(seed);
    const why = `seed ${seed} (INFRAMIND_TEST_SEED)`;
    const start = (await api.head())!;
    const inframindId = `im-chaos-${seed}`;

    // Half the plans are accepted (drains of a registered cluster), half rejected (scales of nothing).
    const plans = Array.from({ length: 24 }, (_, i) => ({
      planId: randomUUID(),
      action: i % 2 === 0 ? drain(`node-chaos-${i}`) : ({ scale: { deploymentId: randomUUID(), replicas: 1 } } as ProtoPlanActionOut),
    }));
    const acksByNonce = new Map<string, PlanAck[]>();
    const noncesByPlan = new Map<string, string[]>();
    const received: LinkEvent[] = [];
    const disorder: string[] = [];
    let processed = start;
    let drops = 0;
    let personPlans = 0;

    const answered = (planId: string) => (noncesByPlan.get(planId) ?? []).some((nonce) => acksByNonce.has(nonce));
    const unanswered = () => plans.filter((p) => !answered(p.planId));

    /** Sends up to 6 plans that have no answer yet, each with a fresh nonce; answers the nonces sent. */
    const submitSome = (connection: Connection): Set<string> => {
      const nonces = new Set<string>();
      for (const { planId, action } of unanswered().slice(0, 6)) {
        const nonce = randomUUID();
        noncesByPlan.set(planId, [...(noncesByPlan.get(planId) ?? []), nonce]);
        nonces.add(nonce);
        connection.send(plan([action], planId, nonce));
      }
      return nonces;
    };

    /** One connection's life: resume, resubmit what has no answer, process and acknowledge; true when all is done. */
    const session = async (): Promise<boolean> => {
      // Events from elsewhere go on meanwhile: a person's plan over the HTTP API.
      const person = await api.request('post', '/action-plans', {
        as: 'operator',
        body: { reason: `a person’s plan ${++personPlans}`, actions: [{ kind: 'drain', clusterId, node: `node-person-${personPlans}` }], ttlSeconds: 600 },
      });
      expect(person.status, JSON.stringify(person.body)).to.equal(202);
      let dropped = false;
      const connection = connect(api.tokens.system, (message, self) => {
        if (dropped) return;
        if (message.body === 'event') {
          if (received.length > 0 && received.at(-1)!.position >= message.event.position) disorder.push(message.event.position);
          received.push(message.event);
          processed = message.event.position;
          if (received.length % 2 === 0) self.send({ ack: { position: processed } });
        }
        if (message.body === 'planAck') acksByNonce.set(message.planAck.nonce, [...(acksByNonce.get(message.planAck.nonce) ?? []), message.planAck]);
        // The first connection always drops early; later ones at random.
        if ((drops === 0 && self.messages.length === 3) || chance() < 0.06) {
          dropped = true;
          drops++;
          self.call.cancel();
        }
      });
      connection.send({ hello: { inframindId, version: 'test', resumeAfter: processed } });
      let outstanding = submitSome(connection);
      let head: string | undefined;
      for (;;) {
        const message = await connection.next();
        if (dropped || !('body' in message)) return false;
        if (message.body === 'planAck') {
          outstanding.delete(message.planAck.nonce);
          if (outstanding.size === 0) outstanding = submitSome(connection);
        }
        if (unanswered().length === 0) {
          head ??= linked(await api.eventsSince(start)).at(-1)!.position;
          if (processed >= head) {
            connection.call.cancel();
            return true;
          }
        }
      }
    };

    while (!(await session()));

    expect(disorder, `${why}: events that came again or out of order`).to.deep.equal([]);
    // Every submission was answered once, every plan has one verdict however often it was sent, and was recorded once.
    for (const [nonce, acks] of acksByNonce) expect(acks, `${why}: nonce ${nonce}`).to.have.length(1);
    for (const { planId, action } of plans) {
      const answers = (noncesByPlan.get(planId) ?? []).flatMap((nonce) => acksByNonce.get(nonce) ?? []);
      expect(answers.length, `${why}: plan ${planId}`).to.be.greaterThan(0);
      const verdicts = new Set(answers.map((ack) => `${ack.verdict} ${ack.position}`));
      expect(verdicts.size, `${why}: plan ${planId} answered differently: ${[...verdicts].join(', ')}`).to.equal(1);
      expect(answers[0]!.verdict).to.equal('drain' in action ? 'ACCEPTED' : 'REJECTED');
      expect((await api.stream(`plan-${planId}`)).length, `${why}: plan ${planId} recorded once`).to.equal(4);
    }
    // Every linked event came down exactly once, in log order.
    const expected = linked(await api.eventsSince(start));
    expect(received.map((event) => event.id), why).to.deep.equal(expected.map((event) => event.id));
    expect(drops, why).to.be.greaterThan(0);
  });
});

describe('fleet observations from the sample store', function () {
  this.timeout(30_000);

  it('observes the latest value of every fresh series, labelled with its cluster and node, and the exact fleet cost', async () => {
    const db = await openPglite();
    try {
      await migrateSentinel(db.knex);
      const samples = new SampleStore(db);
      const now = new Date();
      const agent = { agentId: 'agent-obs', nodeName: 'gpu-node-1', clusterId: 'cluster-obs' };
      await samples.hello({ ...agent, agentVersion: '1' }, now);
      const reading = (gpu: string, value: number, ago: number) => ({
        metric: 'DCGM_FI_DEV_GPU_UTIL',
        labels: { gpu, namespace: 'ml', pod: 'llm-serve-1' },
        value,
        timestampUnixMs: now.getTime() - ago,
      });
      await samples.store({ ...agent, sequence: 1, samples: [reading('0', 40, 20_000), reading('0', 90, 5_000), reading('1', 10, 5_000)], droppedSamples: 0, sentAtUnixMs: now.getTime() }, now);
      // Latest values come from the rollups, which the ingest writes at its next flush.
      await samples.flushRollups();
      const observations = new FleetObservations({
        latestSamples: (query) => samples.latestSamples(query),
        fleetHourlyUsd: async () => 12.345678,
        freshForMs: 60_000,
      });
      const observed = await observations.observe(now);
      expect(observed.fleetCostMicroUsdPerHour).to.equal(12_345_678);
      expect(observed.observedAt).to.equal(now);
      const byGpu = Object.fromEntries(observed.points.map((point) => [point.labels['gpu'], point]));
      expect(byGpu['0']).to.deep.equal({
        metric: 'DCGM_FI_DEV_GPU_UTIL',
        labels: { gpu: '0', namespace: 'ml', pod: 'llm-serve-1', cluster: 'cluster-obs', node: 'gpu-node-1' },
        value: 90,
      });
      expect(byGpu['1']!.value).to.equal(10);
      expect(await observations.observe(new Date(now.getTime() + 3_600_000))).to.have.property('points').that.deep.equals([]);
    } finally {
      await db.close();
    }
  });
});
