// Safety benchmark: random plans, operator commands, pauses and resumes, a change freeze switched on and off, failing
// rollouts and hand edits against the built-in cluster simulator, with the cluster watched on its own every 200 ms.
// Counts the samples in which a namespace held more GPUs on the cluster than its enforce quota allows, and, once
// everything has come to rest, the deployments whose admission-ledger footprint is less than what the cluster runs.
// (Changes begun inside the freeze are not told apart here.)
//   npm run bench:safety                 (embedded PGlite)
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:safety
// Knobs: BENCH_SAFETY_SECONDS (60), BENCH_SAFETY_SEED (1), BENCH_SAFETY_HAND_EDITS (1; 0: no hand edits). Target:
// violations 0, ledger_drift 0 (`violations_by_hand` counts a hand edit's own excess until Sentinel reverts it).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AppsV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { pino } from 'pino';
import { loadConfig } from '../app/config.js';
import { SIMULATED_CLUSTER_ID } from '../app/reactors.js';
import { startSentinel } from '../app/sentinel.js';
import { fold } from '../domain/decider.js';
import { LEDGER_STREAM, ledgerDecider, ledgerEvents } from '../domain/ledger.js';
import { createScratchDatabase, type ScratchDatabase } from '../test/support/postgres.js';
import { DEPLOYMENT_ID_LABEL } from '../reactors/cluster-driver.js';
import { adminClient } from './admin-client.js';

const SECONDS = Number(process.env['BENCH_SAFETY_SECONDS'] ?? 60);
const SEED = Number(process.env['BENCH_SAFETY_SEED'] ?? 1);
/** Whether someone also scales the objects by hand (the drift policy puts them back): 0 leaves the cluster to Sentinel alone. */
const HAND_EDITS = process.env['BENCH_SAFETY_HAND_EDITS'] !== '0';
const PASSWORD = 'bench-admin-password';
const GPU_SKU = 'nvidia-a100-80gb';
/** Three namespaces and their enforce GPU quotas, on a cluster of 16 GPUs. */
const QUOTAS: Record<string, number> = { 'safety-a': 6, 'safety-b': 6, 'safety-c': 8 };
const PER_NAMESPACE = 2;
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** How long after a hand edit the namespace's excess is the hand's: the watch sees it, and the revert rolls out. */
const HAND_EDIT_GRACE_MS = 5_000;

/** A small seeded generator (mulberry32), so that a run can be repeated. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = generator(SEED);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-bench-safety-'));
const scratch: ScratchDatabase | undefined = process.env['DATABASE_URL'] ? await createScratchDatabase(process.env['DATABASE_URL']) : undefined;
const sentinel = await startSentinel(
  loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    TELEMETRY_GRPC_PORT: '0',
    INFRAMIND_GRPC_PORT: '0',
    SENTINEL_DATA_DIR: dataDir,
    ...(scratch ? { DATABASE_URL: scratch.url } : {}),
    SENTINEL_ROLE: 'api,projector,reactor',
    SENTINEL_CLUSTER_SIMULATOR: 'on',
    SENTINEL_PROGRESS_DEADLINE_SECONDS: '3',
    SENTINEL_ADMIN_PASSWORD: PASSWORD,
    SENTINEL_JWT_SECRET: 'b'.repeat(48),
    LOG_LEVEL: 'error',
  }),
  pino({ level: 'error' }),
);

try {
  const simulator = sentinel.reactors?.simulator;
  if (!simulator) throw new Error('this process runs no cluster simulator');
  simulator.faults.neverReady(/:broken$/);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(simulator.kubeconfig());
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const { api, headers, post } = await adminClient(sentinel.port, PASSWORD);
  const send = async (method: string, url: string, body?: unknown) =>
    (await fetch(`${api}${url}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })).status;

  // ---- the fleet: two deployments of one GPU a replica in each namespace, within its quota -------------------
  const deployments: { id: string; namespace: string; name: string; workloadId: string; broken: boolean }[] = [];
  for (const [namespace, gpus] of Object.entries(QUOTAS)) {
    await post('/policies', { name: `quota-${namespace}`, mode: 'enforce', type: 'quota', selector: { namespaces: [namespace] }, parameters: { limits: { gpus } } });
    for (let i = 0; i < PER_NAMESPACE; i++) {
      const name = `model-${i}`;
      // The object on the cluster is found by its deployment-id label when the bench scales it by hand.
      const workload = await post('/workloads', { name, namespace, type: 'inference', image: 'registry.local/model:1', resources: { cpu: '1', memory: '1Gi', gpu: { count: 1, sku: GPU_SKU } } });
      const { id } = await post('/deployments', { workloadId: workload.id, clusterId: SIMULATED_CLUSTER_ID, replicas: 1 });
      deployments.push({ id, namespace, name, workloadId: workload.id, broken: false });
    }
  }
  const freeze = await post('/policies', {
    name: 'freeze',
    mode: 'enforce',
    type: 'change_freeze',
    enabled: false,
    selector: {},
    parameters: { windows: [{ start: new Date(Date.now() - 60_000).toISOString(), end: new Date(Date.now() + 86_400_000).toISOString() }] },
  });

  // ---- the cluster, watched on its own ----------------------------------------------------------------------
  let samples = 0;
  const overQuota = new Map<string, number>();
  /** Samples over quota in a namespace someone scaled by hand in the last few seconds: theirs, until the revert lands. */
  const overQuotaByHand = new Map<string, number>();
  const handEditedAt = new Map<string, number>();
  const watcher = setInterval(() => {
    samples += 1;
    const used: Record<string, number> = {};
    for (const node of simulator.placements()) for (const pod of node.pods) used[pod.namespace] = (used[pod.namespace] ?? 0) + pod.gpus;
    for (const [namespace, quota] of Object.entries(QUOTAS)) {
      if ((used[namespace] ?? 0) <= quota) continue;
      const byHand = Date.now() - (handEditedAt.get(namespace) ?? -Infinity) < HAND_EDIT_GRACE_MS;
      const counted = byHand ? overQuotaByHand : overQuota;
      counted.set(namespace, (counted.get(namespace) ?? 0) + 1);
    }
  }, 200);

  // ---- random actions ---------------------------------------------------------------------------------------
  const counts: Record<string, number> = {};
  const answers: Record<string, number> = {};
  const deadline = Date.now() + SECONDS * 1000;
  while (Date.now() < deadline) {
    const target = pick(deployments);
    const action = pick(['scale', 'scale', 'plan', 'restart', 'pause', 'resume', 'freeze', 'thaw', 'break', ...(HAND_EDITS ? (['hand'] as const) : [])] as const);
    let status = 0;
    switch (action) {
      case 'scale':
        status = await send('POST', `/deployments/${target.id}/scale`, { replicas: Math.floor(random() * 5) });
        break;
      case 'plan':
        status = await send('POST', '/action-plans', {
          reason: 'safety bench',
          actions: [pick(deployments), pick(deployments)].map((d) => ({ kind: 'scale', deploymentId: d.id, replicas: Math.floor(random() * 4) })),
        });
        break;
      case 'restart':
      case 'pause':
      case 'resume':
        status = await send('POST', `/deployments/${target.id}/${action}`, {});
        break;
      case 'freeze':
      case 'thaw':
        status = await send('PATCH', `/policies/${freeze.id}`, { enabled: action === 'freeze' });
        break;
      case 'break': {
        // A new spec revision whose pods never become ready (the rollout fails and is rolled back), or a good one again.
        target.broken = !target.broken;
        await send('PATCH', `/workloads/${target.workloadId}`, { image: target.broken ? 'registry.local/model:broken' : 'registry.local/model:1' });
        status = await send('PATCH', `/deployments/${target.id}`, {});
        break;
      }
      case 'hand':
        // Someone scales the object by hand: the deployment's drift policy (revert) puts it back.
        try {
          const [object] = (await apps.listNamespacedDeployment({ namespace: target.namespace, labelSelector: `${DEPLOYMENT_ID_LABEL}=${target.id}` })).items;
          if (!object) break;
          handEditedAt.set(target.namespace, Date.now());
          await apps.patchNamespacedDeployment({ name: object.metadata!.name!, namespace: target.namespace, body: { spec: { replicas: Math.floor(random() * 5) } } }, MERGE);
          status = 200;
        } catch {
          status = 500;
        }
        break;
    }
    counts[action] = (counts[action] ?? 0) + 1;
    answers[String(status)] = (answers[String(status)] ?? 0) + 1;
    await new Promise((resolve) => setTimeout(resolve, 50 + random() * 150));
  }
  await send('PATCH', `/policies/${freeze.id}`, { enabled: false });
  for (const { id } of deployments) await send('POST', `/deployments/${id}/resume`, {});

  // ---- quiescence: every deployment at rest, then the ledger against the cluster ------------------------------
  const atRest = async () => {
    const states = await Promise.all(
      deployments.map(async ({ id }) => ((await (await fetch(`${api}/deployments/${id}`, { headers })).json()) as { status: string }).status),
    );
    return states.every((status) => !['Pending', 'Applying', 'Progressing'].includes(status));
  };
  for (const until = Date.now() + 60_000; Date.now() < until && !(await atRest()); ) await new Promise((resolve) => setTimeout(resolve, 500));
  await new Promise((resolve) => setTimeout(resolve, 2000));
  clearInterval(watcher);
  const ledger = fold(
    ledgerDecider,
    (await sentinel.eventStore.readStream(LEDGER_STREAM)).map((event) => ledgerEvents.parse(event.type, event.schemaVersion, event.data)),
  );
  const drift: string[] = [];
  for (const { id, namespace, name } of deployments) {
    const [object] = (await apps.listNamespacedDeployment({ namespace, labelSelector: `${DEPLOYMENT_ID_LABEL}=${id}` })).items;
    const running = object?.spec?.replicas ?? 0;
    const counted = ledger.placements[id]?.footprint.gpus ?? 0;
    if (counted < running) drift.push(`${namespace}/${name}: ledger ${counted} GPUs, cluster ${running}`);
  }
  const total = (counts: Map<string, number>) => [...counts.values()].reduce((sum, n) => sum + n, 0);
  const violations = total(overQuota);
  console.log(`actions  ${Object.values(counts).reduce((a, b) => a + b, 0)} in ${SECONDS} s: ${JSON.stringify(counts)}; answers ${JSON.stringify(answers)}`);
  console.log(
    `cluster  ${samples} samples; over a GPU quota in ${violations}: ${JSON.stringify(Object.fromEntries(overQuota))}; ` +
      `and in ${total(overQuotaByHand)} within ${HAND_EDIT_GRACE_MS / 1000} s of a hand edit there, until its revert: ${JSON.stringify(Object.fromEntries(overQuotaByHand))}`,
  );
  console.log(`ledger   ${drift.length} deployments counted below what the cluster runs${drift.length ? `: ${drift.join('; ')}` : ''}`);
  console.log(
    JSON.stringify({
      bench: 'safety',
      seed: SEED,
      seconds: SECONDS,
      actions: Object.values(counts).reduce((a, b) => a + b, 0),
      samples,
      violations,
      violations_by_hand: total(overQuotaByHand),
      ledger_drift: drift.length,
    }),
  );
} finally {
  await sentinel.stop();
  await rm(dataDir, { recursive: true, force: true });
  await scratch?.drop();
}
