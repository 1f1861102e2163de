// What kubectl shows against the cluster simulator: server-side printed Tables, the Events the simulated controllers
// record (listed, watched, filtered as kubectl describe filters them, and bounded), and the answer to pods/log.
import { request as httpsRequest } from 'node:https';
import {
  ApiException,
  EventsV1Api,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type CoreV1Event,
  type V1Deployment,
  type V1Pod,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import { humanDuration } from '../../adapters/kubernetes/simulator/printing.js';
import { startClusterSimulator, type ClusterSimulator } from '../../adapters/kubernetes/simulator/index.js';
import { clients, FAST, type Clients } from '../support/simulator-clients.js';
import { eventually as waitFor } from '../support/eventually.js';

/** What kubectl get sends: a Table in either meta.k8s.io version, else plain JSON. */
const KUBECTL_ACCEPT = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json';

const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** Reads until `done` holds, for at most `timeoutMs`; the last value read is in the failure. */
const eventually = <T>(read: () => Promise<T>, done: (value: T) => boolean, what: string, timeoutMs = 10_000): Promise<T> =>
  waitFor(what, read, done, timeoutMs);

interface Status {
  kind: string;
  status: string;
  reason: string;
  code: number;
  message: string;
}

async function failure(call: Promise<unknown>): Promise<{ code: number; status: Status }> {
  try {
    await call;
  } catch (error) {
    if (!(error instanceof ApiException)) throw error;
    const body = error.body as unknown;
    return { code: error.code, status: (typeof body === 'string' ? JSON.parse(body) : body) as Status };
  }
  throw new Error('expected the call to fail');
}

interface Column {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

interface Row {
  cells: (string | number | boolean)[];
  conditions?: { type: string; status: string }[];
  object?: { kind: string; apiVersion: string; metadata: { name: string; namespace?: string; uid: string; labels?: Record<string, string>; resourceVersion?: string }; spec?: unknown };
}

interface Table {
  kind: string;
  apiVersion: string;
  metadata: { resourceVersion?: string; continue?: string };
  columnDefinitions: Column[];
  rows: Row[];
}

/** A GET as kubectl makes it: the raw status, content type and parsed body. */
async function get(sim: ClusterSimulator, path: string, accept = KUBECTL_ACCEPT): Promise<{ status: number; contentType: string; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${sim.url}${path}`, { ca: sim.caPem, headers: { Authorization: `Bearer ${sim.token}`, Accept: accept } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: JSON.parse(text) as unknown }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function table(sim: ClusterSimulator, path: string, accept = KUBECTL_ACCEPT): Promise<Table> {
  const answer = await get(sim, path, accept);
  expect(answer.status, JSON.stringify(answer.body)).to.equal(200);
  return answer.body as Table;
}

/** The cells of the row whose NAME is `name`, keyed by column name. */
function cellsOf(t: Table, name: string): Record<string, string | number | boolean> {
  const nameAt = t.columnDefinitions.findIndex((c) => c.format === 'name');
  const row = t.rows.find((r) => r.cells[nameAt] === name);
  if (!row) throw new Error(`no row named ${name} in ${JSON.stringify(t.rows.map((r) => r.cells))}`);
  return Object.fromEntries(t.columnDefinitions.map((c, i) => [c.name, row.cells[i]!]));
}

const columns = (t: Table) => t.columnDefinitions.map((c) => [c.name, c.priority]);

function deployment(name: string, namespace: string, options: { replicas?: number; gpus?: number } = {}): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      replicas: options.replicas ?? 2,
      selector: { matchLabels: { app: name } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            { name: 'main', image: 'registry.local/serve:1.0', ...(options.gpus ? { resources: { limits: { 'nvidia.com/gpu': String(options.gpus) } } } : {}) },
          ],
        },
      },
    },
  };
}

async function readyDeployment(c: Clients, name: string, namespace: string, replicas: number): Promise<V1Deployment> {
  return eventually(
    () => c.apps.readNamespacedDeployment({ name, namespace }),
    (d) => d.status?.readyReplicas === replicas && d.status.replicas === replicas && d.status.updatedReplicas === replicas,
    `deployment ${namespace}/${name} to have ${replicas} ready replicas`,
  );
}

async function podsOf(c: Clients, namespace: string, labelSelector: string): Promise<V1Pod[]> {
  return (await c.core.listNamespacedPod({ namespace, labelSelector })).items;
}

/** The fieldSelector kubectl describe sends for an object's events. */
function describeSelector(kind: string, object: { metadata?: { name?: string; namespace?: string; uid?: string } }): string {
  const m = object.metadata!;
  return `involvedObject.name=${m.name},involvedObject.namespace=${m.namespace},involvedObject.kind=${kind},involvedObject.uid=${m.uid}`;
}

async function eventsFor(c: Clients, namespace: string, fieldSelector: string): Promise<CoreV1Event[]> {
  return (await c.core.listNamespacedEvent({ namespace, fieldSelector })).items;
}

describe('cluster simulator as kubectl sees it', function () {
  this.timeout(30_000);
  let sim: ClusterSimulator;
  let c: Clients;

  before(async () => {
    sim = await startClusterSimulator(FAST);
    c = clients(sim);
  });
  after(async () => sim?.close());
  afterEach(() => sim.faults.clear());

  describe('server-side printing (Table)', () => {
    it('prints deployments with NAME, READY, UP-TO-DATE, AVAILABLE, AGE and wide columns, each row carrying PartialObjectMetadata', async () => {
      const ns = 'print-deploy';
      await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('web', ns, { replicas: 2 }) });
      const ready = await readyDeployment(c, 'web', ns, 2);

      const t = await table(sim, `/apis/apps/v1/namespaces/${ns}/deployments`);
      expect(t).to.include({ kind: 'Table', apiVersion: 'meta.k8s.io/v1' });
      expect(Number(t.metadata.resourceVersion)).to.be.at.least(Number(ready.metadata!.resourceVersion));
      expect(columns(t)).to.deep.equal([
        ['Name', 0],
        ['Ready', 0],
        ['Up-to-date', 0],
        ['Available', 0],
        ['Age', 0],
        ['Containers', 1],
        ['Images', 1],
        ['Selector', 1],
      ]);
      expect(t.columnDefinitions[0]).to.include({ type: 'string', format: 'name' });
      expect(t.columnDefinitions.every((col) => col.description.length > 0)).to.equal(true);
      const cells = cellsOf(t, 'web');
      expect(cells).to.deep.include({ Ready: '2/2', 'Up-to-date': 2, Available: 2, Containers: 'main', Images: 'registry.local/serve:1.0', Selector: 'app=web' });
      expect(cells.Age).to.match(/^\d+s$/);
      const object = t.rows[0]!.object!;
      expect(object).to.include({ kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1' });
      expect(object.metadata).to.include({ name: 'web', namespace: ns, uid: ready.metadata!.uid });
      expect(object.metadata.labels).to.deep.equal({ app: 'web' });
      expect(object.spec).to.equal(undefined);
    });

    it('prints pods with READY, STATUS, RESTARTS, AGE, and IP and NODE at priority 1; a pod that cannot be placed reads Pending with <none>', async () => {
      const ns = 'print-pods';
      await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('serve', ns, { replicas: 1 }) });
      await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('huge', ns, { replicas: 1, gpus: 9 }) });
      await readyDeployment(c, 'serve', ns, 1);
      const [running] = await podsOf(c, ns, 'app=serve');
      const [pending] = await eventually(
        () => podsOf(c, ns, 'app=huge'),
        (ps) => ps[0]?.status?.conditions?.some((x) => x.type === 'PodScheduled' && x.status === 'False') === true,
        'the GPU pod to be unschedulable',
      );

      const t = await table(sim, `/api/v1/namespaces/${ns}/pods`);
      expect(columns(t).slice(0, 7)).to.deep.equal([
        ['Name', 0],
        ['Ready', 0],
        ['Status', 0],
        ['Restarts', 0],
        ['Age', 0],
        ['IP', 1],
        ['Node', 1],
      ]);
      expect(cellsOf(t, running!.metadata!.name!)).to.deep.include({
        Ready: '1/1',
        Status: 'Running',
        Restarts: '0',
        IP: running!.status!.podIP,
        Node: running!.spec!.nodeName,
      });
      expect(cellsOf(t, pending!.metadata!.name!)).to.deep.include({ Ready: '0/1', Status: 'Pending', Restarts: '0', IP: '<none>', Node: '<none>' });
    });

    it('embeds the whole object with includeObject=Object, none with None, and prints a single GET as a one-row Table', async () => {
      const ns = 'print-include';
      await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('one', ns, { replicas: 1 }) });
      const read = await readyDeployment(c, 'one', ns, 1);

      const full = await table(sim, `/apis/apps/v1/namespaces/${ns}/deployments?includeObject=Object`);
      expect(full.rows[0]!.object).to.include({ kind: 'Deployment', apiVersion: 'apps/v1' });
      expect(full.rows[0]!.object!.spec).to.have.property('replicas', 1);

      const bare = await table(sim, `/apis/apps/v1/namespaces/${ns}/deployments?includeObject=None`);
      expect(bare.rows[0]).to.not.have.property('object');
      expect(bare.rows[0]!.cells[0]).to.equal('one');

      const single = await table(sim, `/apis/apps/v1/namespaces/${ns}/deployments/one`);
      expect(single.rows).to.have.length(1);
      const current = await c.apps.readNamespacedDeployment({ name: 'one', namespace: ns });
      expect(Number(single.metadata.resourceVersion)).to.be.at.least(Number(read.metadata!.resourceVersion));
      expect(single.metadata.resourceVersion).to.equal(single.rows[0]!.object!.metadata.resourceVersion);
      expect(current.metadata!.uid).to.equal(single.rows[0]!.object!.metadata.uid);

      const beta = await table(sim, `/apis/apps/v1/namespaces/${ns}/deployments`, 'application/json;as=Table;v=v1beta1;g=meta.k8s.io');
      expect(beta).to.include({ kind: 'Table', apiVersion: 'meta.k8s.io/v1beta1' });
      expect(beta.rows[0]!.object).to.include({ kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1beta1' });

      const wrong = await get(sim, `/apis/apps/v1/namespaces/${ns}/deployments?includeObject=Everything`);
      expect(wrong.status).to.equal(400);
    });

    it('answers plain JSON without a Table in the Accept header, and 406 when only a Table it cannot print is acceptable', async () => {
      const plain = await get(sim, '/api/v1/nodes', 'application/json');
      expect(plain.body).to.include({ kind: 'NodeList' });
      const refused = await get(sim, '/api/v1/nodes', 'application/json;as=Table;v=v2;g=meta.k8s.io');
      expect(refused.status).to.equal(406);
      expect(refused.body).to.include({ kind: 'Status', reason: 'NotAcceptable', code: 406 });
    });

    it('prints nodes with STATUS, ROLES, AGE, VERSION, and SchedulingDisabled once cordoned', async () => {
      const small = await startClusterSimulator({ ...FAST, nodes: [{ name: 'n1' }, { name: 'n2', labels: { 'node-role.kubernetes.io/control-plane': '' } }] });
      try {
        await clients(small).core.patchNode({ name: 'n1', body: { spec: { unschedulable: true } } }, merge);
        const t = await table(small, '/api/v1/nodes');
        expect(columns(t).filter(([, p]) => p === 0).map(([n]) => n)).to.deep.equal(['Name', 'Status', 'Roles', 'Age', 'Version']);
        expect(cellsOf(t, 'n1')).to.deep.include({ Status: 'Ready,SchedulingDisabled', Roles: '<none>', Version: 'v1.31.0', 'Internal-IP': '10.0.0.10' });
        expect(cellsOf(t, 'n2')).to.deep.include({ Status: 'Ready', Roles: 'control-plane' });
      } finally {
        await small.close();
      }
    });

    it('prints statefulsets, jobs, finished pods, budgets and namespaces with their own columns, and other kinds with NAME and AGE', async () => {
      const ns = 'print-kinds';
      await c.apps.createNamespacedStatefulSet({
        namespace: ns,
        body: {
          metadata: { name: 'db' },
          spec: {
            replicas: 1,
            serviceName: 'db',
            selector: { matchLabels: { app: 'db' } },
            template: { metadata: { labels: { app: 'db' } }, spec: { containers: [{ name: 'main', image: 'registry.local/db:1' }] } },
          },
        },
      });
      await c.batch.createNamespacedJob({
        namespace: ns,
        body: { metadata: { name: 'train' }, spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'registry.local/train:1' }] } } } },
      });
      await c.policy.createNamespacedPodDisruptionBudget({ namespace: ns, body: { metadata: { name: 'guard' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'db' } } } } });
      await c.autoscaling.createNamespacedHorizontalPodAutoscaler({
        namespace: ns,
        body: { metadata: { name: 'scaler' }, spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db' }, minReplicas: 1, maxReplicas: 3 } },
      });
      await eventually(() => c.apps.readNamespacedStatefulSet({ name: 'db', namespace: ns }), (s) => s.status?.readyReplicas === 1, 'the statefulset to be ready');
      await eventually(
        () => c.batch.readNamespacedJob({ name: 'train', namespace: ns }),
        (j) => j.status?.conditions?.some((x) => x.type === 'Complete' && x.status === 'True') === true,
        'the job to complete',
      );

      const sets = await table(sim, `/apis/apps/v1/namespaces/${ns}/statefulsets`);
      expect(columns(sets)).to.deep.equal([['Name', 0], ['Ready', 0], ['Age', 0], ['Containers', 1], ['Images', 1]]);
      expect(cellsOf(sets, 'db')).to.deep.include({ Ready: '1/1', Containers: 'main' });

      const jobs = await table(sim, `/apis/batch/v1/namespaces/${ns}/jobs`);
      expect(columns(jobs).filter(([, p]) => p === 0).map(([n]) => n)).to.deep.equal(['Name', 'Status', 'Completions', 'Duration', 'Age']);
      const job = cellsOf(jobs, 'train');
      expect(job).to.deep.include({ Status: 'Complete', Completions: '1/1' });
      expect(job.Duration).to.match(/^\d+s$/);

      const pods = await table(sim, `/api/v1/namespaces/${ns}/pods?labelSelector=job-name%3Dtrain`);
      expect(pods.rows).to.have.length(1);
      expect(pods.rows[0]!.cells.slice(1, 3)).to.deep.equal(['0/1', 'Completed']);
      expect(pods.rows[0]!.conditions).to.deep.equal([{ type: 'Completed', status: 'True', reason: 'Succeeded', message: 'The pod has completed successfully.' }]);

      await eventually(() => c.policy.readNamespacedPodDisruptionBudget({ name: 'guard', namespace: ns }), (p) => p.status?.currentHealthy === 1, 'the budget counted');
      const budgets = await table(sim, `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`);
      expect(columns(budgets).map(([n]) => n)).to.deep.equal(['Name', 'Min Available', 'Max Unavailable', 'Allowed Disruptions', 'Age']);
      expect(cellsOf(budgets, 'guard')).to.deep.include({ 'Min Available': '1', 'Max Unavailable': 'N/A', 'Allowed Disruptions': 0 });

      const namespaces = await table(sim, '/api/v1/namespaces');
      expect(columns(namespaces)).to.deep.equal([['Name', 0], ['Status', 0], ['Age', 0]]);
      expect(cellsOf(namespaces, ns)).to.deep.include({ Status: 'Active' });

      const scalers = await table(sim, `/apis/autoscaling/v2/namespaces/${ns}/horizontalpodautoscalers`);
      expect(columns(scalers)).to.deep.equal([['Name', 0], ['Age', 0]]);
      expect(cellsOf(scalers, 'scaler').Age).to.match(/^\d+s$/);
    });

    it('sends Tables on a watch that asks for them (kubectl get -w)', async () => {
      const ns = 'print-watch';
      const lines: { type: string; object: Table }[] = [];
      const req = httpsRequest(`${sim.url}/api/v1/namespaces/${ns}/pods?watch=true`, {
        ca: sim.caPem,
        headers: { Authorization: `Bearer ${sim.token}`, Accept: KUBECTL_ACCEPT },
      });
      const opened = new Promise<void>((resolve, reject) => {
        req.on('response', (res) => {
          let buffer = '';
          res.on('data', (chunk: Buffer) => {
            buffer += chunk.toString();
            let newline: number;
            while ((newline = buffer.indexOf('\n')) >= 0) {
              lines.push(JSON.parse(buffer.slice(0, newline)) as { type: string; object: Table });
              buffer = buffer.slice(newline + 1);
            }
          });
          resolve();
        });
        req.on('error', reject);
      });
      req.end();
      try {
        await opened;
        await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('watched', ns, { replicas: 1 }) });
        await eventually(async () => lines, (l) => l.some((e) => e.object.rows?.[0]?.cells[2] === 'Running'), 'a Running row');
        expect(lines[0]!.type).to.equal('ADDED');
        expect(lines[0]!.object).to.include({ kind: 'Table', apiVersion: 'meta.k8s.io/v1' });
        expect(lines[0]!.object.columnDefinitions.map((col) => col.name).slice(0, 3)).to.deep.equal(['Name', 'Ready', 'Status']);
        expect(lines[0]!.object.rows[0]!.object).to.include({ kind: 'PartialObjectMetadata' });
      } finally {
        req.destroy();
      }
    });

    it('words ages as kubectl does', () => {
      expect(['0s', '59s', '119s', '2m', '9m59s', '10m', '179m', '3h', '7h59m', '8h', '47h', '2d', '7d23h', '8d', '729d', '2y', '7y364d', '8y'].join(' ')).to.equal(
        [0, 59, 119, 120, 599, 600, 179 * 60, 180 * 60, 8 * 3600 - 60, 8 * 3600, 47 * 3600, 48 * 3600, 8 * 86400 - 3600, 8 * 86400, 729 * 86400, 730 * 86400, 8 * 365 * 86400 - 86400, 8 * 365 * 86400]
          .map((s) => humanDuration(s * 1000))
          .join(' '),
      );
      expect(humanDuration(-1500)).to.equal('0s');
      expect(humanDuration(-5000)).to.equal('<invalid>');
    });
  });

  describe('events', () => {
    it('records FailedScheduling with the scheduler\'s reason, found by the fieldSelector kubectl describe sends', async () => {
      const ns = 'events-gpu';
      await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('huge', ns, { replicas: 1, gpus: 9 }) });
      await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('other', ns, { replicas: 1 }) });
      const [pod] = await eventually(() => podsOf(c, ns, 'app=huge'), (ps) => ps.length === 1, 'the pod');
      const events = await eventually(() => eventsFor(c, ns, describeSelector('Pod', pod!)), (es) => es.length > 0, 'the FailedScheduling event');
      expect(events).to.have.length(1);
      const [event] = events;
      expect(event).to.deep.include({ type: 'Warning', reason: 'FailedScheduling', message: '0/4 nodes are available: 4 Insufficient nvidia.com/gpu.', count: 1 });
      expect(event!.involvedObject).to.deep.include({ kind: 'Pod', name: pod!.metadata!.name, namespace: ns, uid: pod!.metadata!.uid, apiVersion: 'v1' });
      expect(event!.source).to.deep.equal({ component: 'default-scheduler' });
      expect(event!.firstTimestamp).to.be.an.instanceOf(Date);
      expect(event!.metadata!.namespace).to.equal(ns);

      // Each field of the selector narrows the list on its own.
      const all = await c.core.listNamespacedEvent({ namespace: ns });
      expect(all.items.length).to.be.greaterThan(1);
      for (const selector of [`involvedObject.uid=${pod!.metadata!.uid}`, `involvedObject.name=${pod!.metadata!.name}`]) {
        expect((await eventsFor(c, ns, selector)).map((e) => e.reason)).to.deep.equal(['FailedScheduling']);
      }
      const onDeployments = await eventsFor(c, ns, 'involvedObject.kind=Deployment');
      expect(onDeployments.length).to.be.greaterThan(0);
      expect(onDeployments.every((e) => e.involvedObject.kind === 'Deployment')).to.equal(true);
      expect(await eventsFor(c, ns, `involvedObject.namespace=elsewhere`)).to.deep.equal([]);
      const everywhere = await c.core.listEventForAllNamespaces({ fieldSelector: `involvedObject.namespace=${ns},reason=FailedScheduling` });
      expect(everywhere.items.map((e) => e.involvedObject.name)).to.deep.equal([pod!.metadata!.name]);
    });

    it('records a pod scheduled, its container started, and killed when the pod is evicted', async () => {
      const ns = 'events-pod';
      await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('life', ns, { replicas: 1 }) });
      await readyDeployment(c, 'life', ns, 1);
      const [pod] = await podsOf(c, ns, 'app=life');
      const selector = describeSelector('Pod', pod!);
      const started = await eventually(() => eventsFor(c, ns, selector), (es) => es.some((e) => e.reason === 'Started'), 'Started');
      expect(started.map((e) => e.reason)).to.include.members(['Scheduled', 'Pulled', 'Created', 'Started']);
      const scheduled = started.find((e) => e.reason === 'Scheduled')!;
      expect(scheduled.message).to.equal(`Successfully assigned ${ns}/${pod!.metadata!.name} to ${pod!.spec!.nodeName}`);
      const start = started.find((e) => e.reason === 'Started')!;
      expect(start).to.deep.include({ type: 'Normal', message: 'Started container main' });
      expect(start.involvedObject.fieldPath).to.equal('spec.containers{main}');
      expect(start.source).to.deep.equal({ component: 'kubelet', host: pod!.spec!.nodeName });

      await c.core.createNamespacedPodEviction({
        name: pod!.metadata!.name!,
        namespace: ns,
        body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod!.metadata!.name!, namespace: ns } },
      });
      const killed = await eventually(() => eventsFor(c, ns, selector), (es) => es.some((e) => e.reason === 'Killing'), 'Killing');
      expect(killed.find((e) => e.reason === 'Killing')).to.deep.include({ type: 'Normal', message: 'Stopping container main' });
    });

    it('records ScalingReplicaSet on the Deployment, and counts a repeat instead of storing it again', async () => {
      const ns = 'events-scale';
      await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('elastic', ns, { replicas: 1 }) });
      const first = await readyDeployment(c, 'elastic', ns, 1);
      const hash = (await podsOf(c, ns, 'app=elastic'))[0]!.metadata!.labels!['pod-template-hash'];
      const selector = describeSelector('Deployment', first);
      const scaling = async () => (await eventsFor(c, ns, selector)).filter((e) => e.reason === 'ScalingReplicaSet');
      const up = `Scaled up replica set elastic-${hash} from 1 to 2`;
      const scale = (replicas: number) => c.apps.patchNamespacedDeploymentScale({ name: 'elastic', namespace: ns, body: { spec: { replicas } } }, merge);

      await scale(2);
      await eventually(scaling, (es) => es.some((e) => e.message === up), 'the scale up');
      await scale(1);
      await eventually(scaling, (es) => es.some((e) => e.message === `Scaled down replica set elastic-${hash} from 2 to 1`), 'the scale down');
      await scale(2);
      const events = await eventually(scaling, (es) => es.find((e) => e.message === up)?.count === 2, 'the repeated scale up counted');
      expect(events.map((e) => e.message)).to.have.members([`Scaled up replica set elastic-${hash} from 0 to 1`, up, `Scaled down replica set elastic-${hash} from 2 to 1`]);
      const repeated = events.find((e) => e.message === up)!;
      expect(repeated.source).to.deep.equal({ component: 'deployment-controller' });
      expect(repeated.lastTimestamp!.getTime()).to.be.at.least(repeated.firstTimestamp!.getTime());

      // Replacing a deleted pod keeps the replica set's size: no scaling is recorded. The victim is a running pod: one
      // the scale-up has only just created has no containers yet, and a kubelet kills none.
      await readyDeployment(c, 'elastic', ns, 2);
      const victim = (await podsOf(c, ns, 'app=elastic')).find((pod) => pod.status?.phase === 'Running');
      await c.core.deleteNamespacedPod({ name: victim!.metadata!.name!, namespace: ns });
      await eventually(() => eventsFor(c, ns, describeSelector('Pod', victim!)), (es) => es.some((e) => e.reason === 'Killing'), 'the deleted pod killed');
      await readyDeployment(c, 'elastic', ns, 2);
      expect((await scaling()).map((e) => [e.message, e.count])).to.have.deep.members([
        [`Scaled up replica set elastic-${hash} from 0 to 1`, 1],
        [up, 2],
        [`Scaled down replica set elastic-${hash} from 2 to 1`, 1],
      ]);
    });

    it('records FailedCreate for pods a quota refuses, combining the similar refusals and stopping after a burst', async () => {
      const ns = 'events-quota';
      sim.setQuota(ns, { pods: 1 });
      await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('capped', ns, { replicas: 3 }) });
      const capped = await c.apps.readNamespacedDeployment({ name: 'capped', namespace: ns });
      const failedCreate = async () => (await eventsFor(c, ns, describeSelector('Deployment', capped))).filter((e) => e.reason === 'FailedCreate');
      // The controller retries every pass; client-go's spam filter lets 25 through, then one every five minutes.
      const events = await eventually(failedCreate, (es) => es.reduce((sum, e) => sum + (e.count ?? 0), 0) === 25, 'a burst of 25 refusals');
      expect(events.every((e) => e.type === 'Warning' && e.message!.includes('exceeded quota'))).to.equal(true);
      expect(events[0]!.message).to.match(/^(\(combined from similar events\): )?Error creating: pods "capped-[a-z0-9]+-[a-z0-9]+" is forbidden: exceeded quota/);
      // Nine distinct messages (each names its generated pod) are kept apart; from the tenth on they are combined.
      expect(events).to.have.length(10);
      const combined = events.filter((e) => e.message!.startsWith('(combined from similar events): '));
      expect(combined).to.have.length(1);
      expect(combined[0]!.count).to.equal(16);
    });

    it('records the StatefulSet and Job controllers\' pod creations, a Job\'s completion, a failing readiness probe and a cordon', async () => {
      const ns = 'events-kinds';
      const set = await c.apps.createNamespacedStatefulSet({
        namespace: ns,
        body: {
          metadata: { name: 'db' },
          spec: {
            replicas: 1,
            serviceName: 'db',
            selector: { matchLabels: { app: 'db' } },
            template: { metadata: { labels: { app: 'db' } }, spec: { containers: [{ name: 'main', image: 'registry.local/db:1' }] } },
          },
        },
      });
      const job = await c.batch.createNamespacedJob({
        namespace: ns,
        body: { metadata: { name: 'train' }, spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'registry.local/train:1' }] } } } },
      });
      sim.faults.neverReady(/never-ready/);
      const broken = deployment('broken', ns, { replicas: 1 });
      broken.spec!.template.spec!.containers[0]!.image = 'registry.local/never-ready:1';
      await c.apps.createNamespacedDeployment({ namespace: ns, body: broken });

      const setEvents = await eventually(() => eventsFor(c, ns, describeSelector('StatefulSet', set)), (es) => es.length > 0, 'the StatefulSet event');
      expect(setEvents.map((e) => [e.type, e.reason, e.message, e.source?.component])).to.deep.equal([
        ['Normal', 'SuccessfulCreate', 'create Pod db-0 in StatefulSet db successful', 'statefulset-controller'],
      ]);
      const jobEvents = await eventually(() => eventsFor(c, ns, describeSelector('Job', job)), (es) => es.some((e) => e.reason === 'Completed'), 'the Job to complete');
      const [jobPod] = await c.core.listNamespacedPod({ namespace: ns, labelSelector: 'job-name=train' }).then((l) => l.items);
      expect(jobEvents.map((e) => [e.reason, e.message])).to.have.deep.members([
        ['SuccessfulCreate', `Created pod: ${jobPod!.metadata!.name}`],
        ['Completed', 'Job completed'],
      ]);

      const [unready] = await eventually(() => podsOf(c, ns, 'app=broken'), (ps) => ps[0]?.status?.phase === 'Running', 'the unready pod running');
      const unhealthy = await eventually(() => eventsFor(c, ns, describeSelector('Pod', unready!)), (es) => es.some((e) => e.reason === 'Unhealthy'), 'Unhealthy');
      expect(unhealthy.find((e) => e.reason === 'Unhealthy')).to.deep.include({ type: 'Warning', count: 1 });
      expect(unhealthy.find((e) => e.reason === 'Unhealthy')!.message).to.match(/^Readiness probe failed/);

      const small = await startClusterSimulator({ ...FAST, nodes: [{ name: 'n1' }] });
      try {
        const sc = clients(small);
        await sc.core.patchNode({ name: 'n1', body: { spec: { unschedulable: true } } }, merge);
        const node = await sc.core.readNode({ name: 'n1' });
        // kubectl describe node asks across namespaces, with an empty involvedObject.namespace.
        const events = await eventually(
          () => sc.core.listEventForAllNamespaces({ fieldSelector: `involvedObject.name=n1,involvedObject.namespace=,involvedObject.kind=Node,involvedObject.uid=${node.metadata!.uid}` }),
          (l) => l.items.length > 0,
          'the cordon event',
        );
        expect(events.items.map((e) => [e.reason, e.message, e.metadata?.namespace])).to.deep.equal([['NodeNotSchedulable', 'Node n1 status is now: NodeNotSchedulable', 'default']]);
      } finally {
        await small.close();
      }
    });

    it('serves events to watches, and creates events clients post', async () => {
      const ns = 'events-watch';
      const seen: CoreV1Event[] = [];
      const watch = await new Watch(c.kc).watch(`/api/v1/namespaces/${ns}/events`, {}, (type: string, e: CoreV1Event) => {
        if (type === 'ADDED') seen.push(e);
      }, () => {});
      try {
        await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('seen', ns, { replicas: 1 }) });
        await eventually(async () => seen, (s) => s.some((e) => e.reason === 'Started'), 'a Started event on the watch');
        expect(seen.map((e) => e.reason)).to.include.members(['ScalingReplicaSet', 'Scheduled', 'Started']);

        const [pod] = await podsOf(c, ns, 'app=seen');
        await c.core.createNamespacedEvent({
          namespace: ns,
          body: {
            metadata: { name: 'by-hand' },
            involvedObject: { kind: 'Pod', name: pod!.metadata!.name, namespace: ns, uid: pod!.metadata!.uid },
            reason: 'Noted',
            message: 'written by a client',
            type: 'Normal',
          },
        });
        const found = await eventsFor(c, ns, describeSelector('Pod', pod!));
        expect(found.map((e) => e.reason)).to.include('Noted');
      } finally {
        watch.abort();
      }
    });

    it('serves the same events read-only through events.k8s.io/v1, under its field names', async () => {
      const ns = 'events-v1';
      const events = c.kc.makeApiClient(EventsV1Api);
      await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('newer', ns, { replicas: 1, gpus: 9 }) });
      const [pod] = await eventually(() => podsOf(c, ns, 'app=newer'), (ps) => ps.length === 1, 'the pod');
      const core = await eventually(() => eventsFor(c, ns, describeSelector('Pod', pod!)), (es) => es.length === 1, 'FailedScheduling');

      const list = await events.listNamespacedEvent({ namespace: ns, fieldSelector: `regarding.name=${pod!.metadata!.name}` });
      expect(list.items).to.have.length(1);
      const [event] = list.items;
      expect(event).to.deep.include({ reason: 'FailedScheduling', note: core[0]!.message, type: 'Warning', reportingController: 'default-scheduler', deprecatedCount: 1 });
      expect(event!.metadata).to.deep.include({ name: core[0]!.metadata!.name, uid: core[0]!.metadata!.uid });
      expect(event!.regarding).to.deep.include({ kind: 'Pod', name: pod!.metadata!.name, uid: pod!.metadata!.uid });
      const read = await events.readNamespacedEvent({ namespace: ns, name: event!.metadata!.name! });
      expect(read.note).to.equal(core[0]!.message);

      const refused = await failure(events.deleteNamespacedEvent({ namespace: ns, name: event!.metadata!.name! }));
      expect(refused.code).to.equal(405);
      const t = await table(sim, `/apis/events.k8s.io/v1/namespaces/${ns}/events?fieldSelector=reason%3DFailedScheduling`);
      expect(t.rows.map((r) => [r.cells[2], r.cells[3], r.cells[6]])).to.deep.equal([['FailedScheduling', `pod/${pod!.metadata!.name}`, core[0]!.message]]);
    });

    it('prints events with LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, and COUNT and SOURCE at priority 1', async () => {
      const ns = 'events-print';
      await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('shown', ns, { replicas: 1, gpus: 9 }) });
      await eventually(() => c.core.listNamespacedEvent({ namespace: ns, fieldSelector: 'reason=FailedScheduling' }), (l) => l.items.length === 1, 'FailedScheduling');
      const t = await table(sim, `/api/v1/namespaces/${ns}/events`);
      expect(columns(t)).to.deep.equal([
        ['Last Seen', 0],
        ['Type', 0],
        ['Reason', 0],
        ['Object', 0],
        ['Subobject', 1],
        ['Source', 1],
        ['Message', 0],
        ['First Seen', 1],
        ['Count', 1],
        ['Name', 1],
      ]);
      const row = t.rows.map((r) => Object.fromEntries(t.columnDefinitions.map((col, i) => [col.name, r.cells[i]]))).find((r) => r.Reason === 'FailedScheduling')!;
      expect(row).to.deep.include({ Type: 'Warning', Source: 'default-scheduler', Message: '0/4 nodes are available: 4 Insufficient nvidia.com/gpu.', Count: 1 });
      expect(row.Object).to.match(/^pod\/shown-/);
      expect(row['Last Seen']).to.match(/^\d+s$/);
    });

    it('records nothing into a deleted namespace, so the pods killed with it do not bring it back', async () => {
      const ns = 'events-gone';
      await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('doomed', ns, { replicas: 1 }) });
      await readyDeployment(c, 'doomed', ns, 1);
      await c.core.deleteNamespace({ name: ns });
      // A pod started after the deletion proves the kubelet has had its pass over the pods that went with it.
      await c.apps.createNamespacedDeployment({ namespace: 'events-after', body: deployment('later', 'events-after', { replicas: 1 }) });
      await readyDeployment(c, 'later', 'events-after', 1);
      const gone = await failure(c.core.readNamespace({ name: ns }));
      expect(gone.code).to.equal(404);
      const everywhere = await c.core.listEventForAllNamespaces({ fieldSelector: `involvedObject.namespace=${ns}` });
      expect(everywhere.items).to.deep.equal([]);
    });

    it('keeps at most eventLimit events, dropping the least recently written', async () => {
      const small = await startClusterSimulator({ ...FAST, eventLimit: 5 });
      try {
        const sc = clients(small);
        await sc.apps.createNamespacedDeployment({ namespace: 'bounded', body: deployment('many', 'bounded', { replicas: 3 }) });
        await readyDeployment(sc, 'many', 'bounded', 3);
        // Three pods each give Scheduled, Pulled, Created and Started, and the Deployment its scaling: far more than five.
        const pods = await podsOf(sc, 'bounded', 'app=many');
        const last = pods.map((p) => p.metadata!.name!);
        const events = await eventually(
          () => sc.core.listEventForAllNamespaces(),
          (l) => l.items.filter((e) => e.reason === 'Started').length > 0,
          'a Started event',
        );
        expect(events.items.length).to.be.at.most(5);
        expect(events.items.length).to.be.greaterThan(0);
        expect(events.items.some((e) => e.reason === 'Started' && last.includes(e.involvedObject.name!))).to.equal(true);
      } finally {
        await small.close();
      }
    });
  });

  describe('pods/log', () => {
    it('answers 400 BadRequest with a Status saying the simulator runs no containers, naming them', async () => {
      const ns = 'logs';
      await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('quiet', ns, { replicas: 1 }) });
      await readyDeployment(c, 'quiet', ns, 1);
      const [pod] = await podsOf(c, ns, 'app=quiet');
      const name = pod!.metadata!.name!;

      const refused = await failure(c.core.readNamespacedPodLog({ name, namespace: ns }));
      expect(refused.code).to.equal(400);
      expect(refused.status).to.include({ kind: 'Status', status: 'Failure', reason: 'BadRequest', code: 400 });
      expect(refused.status.message).to.contain('runs no containers');
      expect(refused.status.message).to.contain('(main)');

      const named = await failure(c.core.readNamespacedPodLog({ name, namespace: ns, container: 'main' }));
      expect(named.status.message).to.contain('container "main"');
      const wrong = await failure(c.core.readNamespacedPodLog({ name, namespace: ns, container: 'sidecar' }));
      expect(wrong.code).to.equal(400);
      expect(wrong.status.message).to.equal(`container sidecar is not valid for pod ${name}`);
      const missing = await failure(c.core.readNamespacedPodLog({ name: 'no-such-pod', namespace: ns }));
      expect(missing.code).to.equal(404);

      const discovery = (await get(sim, '/api/v1', 'application/json')).body as { resources: { name: string; verbs: string[] }[] };
      expect(discovery.resources.find((r) => r.name === 'pods/log')?.verbs).to.deep.equal(['get']);
      expect(discovery.resources.find((r) => r.name === 'events')?.verbs).to.include.members(['list', 'watch', 'create']);
    });
  });
});
