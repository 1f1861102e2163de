// A random run of the closed loop against the built-in cluster simulator, watched from outside: plans, operator
// commands, pauses and resumes, drains and hand uncordons, a change freeze switched on and off, rollouts that fail
// and are rolled back, and hand edits of the objects on the cluster. After every step, and every 200 ms besides, the
// cluster is sampled on its own; at the end, with everything at rest, the admission ledger is read back and compared
// with the cluster. The property test runs it briefly on each backend; `npm run bench:safety` runs it for longer.
//
// What counts as broken:
// - a sample in which a namespace holds more GPUs on the cluster than its enforce quota allows (unless someone
//   scaled an object there by hand in the last few seconds: that excess is the hand's until Sentinel reverts it);
// - a change admitted to the ledger while the freeze was on: stored after the switch-on was answered and before
//   the switch-off was asked for;
// - more changes admitted to one target within the rate limit's window than it allows;
// - at rest, a deployment whose ledger footprint is less than what its object on the cluster runs.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AppsV1Api, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { pino } from 'pino';
import { adminClient } from '../../bench/admin-client.js';
import { loadConfig } from '../../app/config.js';
import { SIMULATED_CLUSTER_ID } from '../../app/reactors.js';
import { startSentinel } from '../../app/sentinel.js';
import { fold } from '../../domain/decider.js';
import { LEDGER_STREAM, ledgerDecider, ledgerEvents } from '../../domain/ledger.js';
import { DEPLOYMENT_ID_LABEL } from '../../reactors/cluster-driver.js';
import { createScratchDatabase, type ScratchDatabase } from './postgres.js';

export interface LoopSafetyOptions {
  /** The seed of the random choices: the same seed makes the same choices (their timing still varies). */
  seed: number;
  /** How many random actions to take; or, with `seconds`, as many as fit. */
  steps?: number;
  seconds?: number;
  /** Whether someone also scales the objects on the cluster by hand (the drift policy puts them back). */
  handEdits: boolean;
  /** A PostgreSQL server to run on (a scratch database is made and dropped); embedded PGlite when absent. */
  databaseUrl?: string;
  /** Sentinel's own log, on stdout (silent when absent). */
  logLevel?: string;
  /** The pause between two actions is drawn from [min, max) milliseconds. */
  pauseMs?: { min: number; max: number };
}

export interface LoopSafetyReport {
  steps: number;
  /** Actions taken, by kind, and the HTTP answers they got, by status. */
  actions: Record<string, number>;
  answers: Record<string, number>;
  samples: number;
  /** Samples with a namespace over its GPU quota that no hand edit explains: one line each. */
  overQuota: string[];
  /** Samples over quota within a few seconds of a hand edit in that namespace, before the revert landed. */
  overQuotaByHand: number;
  /** Changes admitted while the freeze was on. */
  admittedInFreeze: string[];
  /** Targets that got more admitted changes within the rate limit's window than it allows. */
  rateLimitBreaches: string[];
  /** Deployments whose ledger footprint is less than what the cluster runs, at rest. */
  ledgerDrift: string[];
  /** Deployments still moving when the wait for rest ran out, with their status: none when all came to rest. */
  notAtRest: string[];
}

const PASSWORD = 'loop-safety-admin-password';
const GPU_SKU = 'nvidia-a100-80gb';
/** Three namespaces and their enforce GPU quotas, on a simulated cluster of 16 GPUs. */
export const LOOP_SAFETY_QUOTAS: Readonly<Record<string, number>> = { 'safety-a': 6, 'safety-b': 6, 'safety-c': 8 };
const PER_NAMESPACE = 2;
/** The rate limit the run is under: per target, all kinds of change. */
const RATE_LIMIT = { maxActions: 4, windowSeconds: 20 };
const NODES = ['sim-gpu-1', 'sim-gpu-2', 'sim-cpu-1'] as const;
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** How long after a hand edit the namespace's excess is the hand's: the watch sees it, and the revert rolls out. */
const HAND_EDIT_GRACE_MS = 5_000;
/** The longest wait for every deployment to come to rest at the end. */
const REST_TIMEOUT_MS = 60_000;

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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Target {
  id: string;
  namespace: string;
  name: string;
  workloadId: string;
  broken: boolean;
}

export async function runLoopSafety(options: LoopSafetyOptions): Promise<LoopSafetyReport> {
  if (options.steps === undefined && options.seconds === undefined) throw new Error('a loop-safety run needs `steps` or `seconds`');
  const random = generator(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const pause = options.pauseMs ?? { min: 50, max: 200 };

  const dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-loop-safety-'));
  let scratch: ScratchDatabase | undefined;
  let sentinel: Awaited<ReturnType<typeof startSentinel>> | undefined;
  let watcher: NodeJS.Timeout | undefined;
  try {
    scratch = options.databaseUrl ? await createScratchDatabase(options.databaseUrl) : undefined;
    sentinel = await startSentinel(
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
        LOG_LEVEL: options.logLevel ?? 'silent',
      }),
      pino({ level: options.logLevel ?? 'silent' }),
    );
    const { eventStore } = sentinel;
    const simulator = sentinel.reactors?.simulator;
    if (!simulator) throw new Error('this process runs no cluster simulator');
    simulator.faults.neverReady(/:broken$/);
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(simulator.kubeconfig());
    const apps = kubeConfig.makeApiClient(AppsV1Api);
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const { api, headers, post } = await adminClient(sentinel.port, PASSWORD);
    const send = async (method: string, url: string, body?: unknown) =>
      (await fetch(`${api}${url}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })).status;

    // ---- the fleet: two deployments of one GPU a replica in each namespace, within its quota ------------------
    const targets: Target[] = [];
    for (const [namespace, gpus] of Object.entries(LOOP_SAFETY_QUOTAS)) {
      await post('/policies', { name: `quota-${namespace}`, mode: 'enforce', type: 'quota', selector: { namespaces: [namespace] }, parameters: { limits: { gpus } } });
      for (let i = 0; i < PER_NAMESPACE; i++) {
        const name = `model-${i}`;
        const workload = await post('/workloads', { name, namespace, type: 'inference', image: 'registry.local/model:1', resources: { cpu: '1', memory: '1Gi', gpu: { count: 1, sku: GPU_SKU } } });
        const { id } = await post('/deployments', { workloadId: workload.id, clusterId: SIMULATED_CLUSTER_ID, replicas: 1 });
        targets.push({ id, namespace, name, workloadId: workload.id, broken: false });
      }
    }
    await post('/policies', { name: 'rate-limit', mode: 'enforce', type: 'rate_limit', selector: {}, parameters: { ...RATE_LIMIT, per: 'target' } });
    const freeze = await post('/policies', {
      name: 'freeze',
      mode: 'enforce',
      type: 'change_freeze',
      enabled: false,
      selector: {},
      parameters: { windows: [{ start: new Date(Date.now() - 60_000).toISOString(), end: new Date(Date.now() + 86_400_000).toISOString() }] },
    });

    // ---- the cluster, watched on its own ------------------------------------------------------------------------
    let samples = 0;
    const overQuota: string[] = [];
    let overQuotaByHand = 0;
    const handEditedAt = new Map<string, number>();
    /** When each namespace was first seen over its quota with no hand edit to explain it. */
    const firstOverQuota = new Map<string, number>();
    const sample = () => {
      samples += 1;
      const used: Record<string, number> = {};
      /** GPUs by pod, `name ready|starting`, for the report's lines. */
      const pods: Record<string, string[]> = {};
      for (const node of simulator.placements()) {
        for (const pod of node.pods) {
          used[pod.namespace] = (used[pod.namespace] ?? 0) + pod.gpus;
          if (pod.gpus > 0) (pods[pod.namespace] ??= []).push(`${pod.name}${pod.ready ? '' : ' (not ready)'}`);
        }
      }
      for (const [namespace, quota] of Object.entries(LOOP_SAFETY_QUOTAS)) {
        if ((used[namespace] ?? 0) <= quota) continue;
        const sinceHandEdit = Date.now() - (handEditedAt.get(namespace) ?? -Infinity);
        if (sinceHandEdit < HAND_EDIT_GRACE_MS) {
          overQuotaByHand += 1;
          continue;
        }
        if (!firstOverQuota.has(namespace)) firstOverQuota.set(namespace, Date.now());
        overQuota.push(
            `${new Date().toISOString()} ${namespace}: ${used[namespace]} GPUs on the cluster, quota ${quota}` +
              `${Number.isFinite(sinceHandEdit) ? `, ${(sinceHandEdit / 1000).toFixed(1)} s after a hand edit there` : ''}: ${pods[namespace]!.sort().join(', ')}`,
          );
      }
    };
    watcher = setInterval(sample, 200);

    // ---- random actions -----------------------------------------------------------------------------------------
    const freezeSwitches: { on: boolean; at: number }[] = [];
    const actions: Record<string, number> = {};
    const answers: Record<string, number> = {};
    const kinds = ['scale', 'scale', 'plan', 'restart', 'pause', 'resume', 'drain', 'uncordon', 'freeze', 'thaw', 'break', ...(options.handEdits ? ['hand'] : [])] as const;
    const deadline = options.seconds === undefined ? Infinity : Date.now() + options.seconds * 1000;
    let steps = 0;
    while ((options.steps === undefined || steps < options.steps) && Date.now() < deadline) {
      steps += 1;
      const target = pick(targets);
      const action = pick(kinds);
      let status = 0;
      switch (action) {
        case 'scale':
          status = await send('POST', `/deployments/${target.id}/scale`, { replicas: Math.floor(random() * 5) });
          break;
        case 'plan':
          status = await send('POST', '/action-plans', {
            reason: 'loop safety',
            actions: [pick(targets), pick(targets)].map((d) => ({ kind: 'scale', deploymentId: d.id, replicas: Math.floor(random() * 4) })),
          });
          break;
        case 'restart':
        case 'pause':
        case 'resume':
          status = await send('POST', `/deployments/${target.id}/${action}`, {});
          break;
        case 'drain':
          status = await send('POST', '/action-plans', { reason: 'loop safety', actions: [{ kind: 'drain', clusterId: SIMULATED_CLUSTER_ID, node: pick(NODES) }] });
          break;
        case 'uncordon': {
          // An operator puts a drained node back into service by hand.
          const node = pick(NODES);
          await core.patchNode({ name: node, body: { spec: { unschedulable: false } } }, MERGE);
          status = 200;
          break;
        }
        case 'freeze':
        case 'thaw': {
          const on = action === 'freeze';
          // Switched off from the moment it is asked for; on from the moment the answer comes.
          if (!on) freezeSwitches.push({ on, at: Date.now() });
          status = await send('PATCH', `/policies/${freeze.id}`, { enabled: on });
          if (on) freezeSwitches.push({ on, at: Date.now() });
          break;
        }
        case 'break':
          // A new spec revision whose pods never become ready (the rollout fails and is rolled back), or a good one again.
          target.broken = !target.broken;
          await send('PATCH', `/workloads/${target.workloadId}`, { image: target.broken ? 'registry.local/model:broken' : 'registry.local/model:1' });
          status = await send('PATCH', `/deployments/${target.id}`, {});
          break;
        case 'hand': {
          // Someone scales the object by hand: the deployment's drift policy (revert) puts it back.
          const [object] = (await apps.listNamespacedDeployment({ namespace: target.namespace, labelSelector: `${DEPLOYMENT_ID_LABEL}=${target.id}` })).items;
          if (!object) break;
          handEditedAt.set(target.namespace, Date.now());
          await apps.patchNamespacedDeployment({ name: object.metadata!.name!, namespace: target.namespace, body: { spec: { replicas: Math.floor(random() * 5) } } }, MERGE);
          status = 200;
          break;
        }
      }
      actions[action] = (actions[action] ?? 0) + 1;
      answers[String(status)] = (answers[String(status)] ?? 0) + 1;
      sample();
      await sleep(pause.min + random() * (pause.max - pause.min));
    }
    freezeSwitches.push({ on: false, at: Date.now() });
    await send('PATCH', `/policies/${freeze.id}`, { enabled: false });
    for (const node of NODES) await core.patchNode({ name: node, body: { spec: { unschedulable: false } } }, MERGE);
    for (const { id } of targets) await send('POST', `/deployments/${id}/resume`, {});

    // ---- quiescence: every deployment at rest, then the ledger against the cluster --------------------------------
    /** The deployment's last events, oldest first, so that a line in the report explains itself. */
    const story = async (id: string, around?: number) => {
      const all = await eventStore.readStream(`deployment-${id}`);
      const events = around === undefined ? all.slice(-12) : all.filter((event) => Math.abs(event.recordedAt.getTime() - around) < 10_000);
      const brief = (data: Record<string, unknown>) =>
        ['replicas', 'revision', 'toRevision', 'reason', 'error', 'cause'].flatMap((key) => (data[key] === undefined ? [] : [`${key}=${JSON.stringify(data[key])}`])).join(' ');
      return events
        .map((event) => `\n      ${event.recordedAt.toISOString()} ${event.type} ${brief(event.data)} (${String((event.metadata as { actor?: { id?: string } }).actor?.id ?? '')})`)
        .join('');
    };
    const moving = async () => {
      const states = await Promise.all(
        targets.map(async (target) => ({ target, ...((await (await fetch(`${api}/deployments/${target.id}`, { headers })).json()) as { status: string; paused: boolean }) })),
      );
      // A paused deployment whose resume policy refused (the rate limit, say) waits for a person: it is at rest.
      return states.filter(({ status, paused }) => !paused && ['Pending', 'Applying', 'Progressing'].includes(status));
    };
    let stillMoving = await moving();
    for (const until = Date.now() + REST_TIMEOUT_MS; Date.now() < until && stillMoving.length > 0; stillMoving = await moving()) await sleep(500);
    const notAtRest = await Promise.all(stillMoving.map(async ({ target, status }) => `${target.namespace}/${target.name}: ${status}${await story(target.id)}`));
    await sleep(2000);
    clearInterval(watcher);
    watcher = undefined;

    // Read and parsed once: the admissions are checked one by one, and folded for the ledger at rest.
    const recorded = (await eventStore.readStream(LEDGER_STREAM)).map((event) => ({
      storedAt: event.recordedAt.getTime(),
      parsed: ledgerEvents.parse(event.type, event.schemaVersion, event.data),
    }));
    const admissions = recorded.flatMap(({ parsed, storedAt }) =>
      parsed.type === 'ChangeAdmitted' && !parsed.data.settles ? [{ ...parsed.data, storedAt }] : [],
    );
    const ledger = fold(ledgerDecider, recorded.map(({ parsed }) => parsed));

    const frozen = (at: number) => {
      const last = freezeSwitches.filter((change) => change.at <= at).at(-1);
      return last?.on === true;
    };
    const admittedInFreeze = admissions
      .filter((admission) => frozen(admission.storedAt))
      .map((admission) => `${admission.action} of ${admission.targetId} by ${admission.actorId}, stored at ${new Date(admission.storedAt).toISOString()}`);

    const rateLimitBreaches: string[] = [];
    const byTarget = new Map<string, number[]>();
    for (const admission of admissions) byTarget.set(admission.targetId, [...(byTarget.get(admission.targetId) ?? []), Date.parse(admission.at)]);
    for (const [targetId, times] of byTarget) {
      times.sort((a, b) => a - b);
      for (let i = RATE_LIMIT.maxActions; i < times.length; i++) {
        if (times[i]! - times[i - RATE_LIMIT.maxActions]! < RATE_LIMIT.windowSeconds * 1000) {
          rateLimitBreaches.push(`${targetId}: ${RATE_LIMIT.maxActions + 1} changes between ${new Date(times[i - RATE_LIMIT.maxActions]!).toISOString()} and ${new Date(times[i]!).toISOString()}`);
          break;
        }
      }
    }

    const ledgerDrift: string[] = [];
    for (const { id, namespace, name } of targets) {
      const [object] = (await apps.listNamespacedDeployment({ namespace, labelSelector: `${DEPLOYMENT_ID_LABEL}=${id}` })).items;
      const running = object?.spec?.replicas ?? 0;
      const counted = ledger.placements[id]?.footprint.gpus ?? 0;
      if (counted < running) ledgerDrift.push(`${namespace}/${name}: ledger ${counted} GPUs, cluster ${running}${await story(id)}`);
    }
    // What the deployments of a namespace went through around the time it was first seen over its quota.
    for (const [namespace, at] of firstOverQuota) {
      for (const target of targets.filter((t) => t.namespace === namespace)) overQuota.push(`around the first: ${namespace}/${target.name}${await story(target.id, at)}`);
    }
    return { steps, actions, answers, samples, overQuota, overQuotaByHand, admittedInFreeze, rateLimitBreaches, ledgerDrift, notAtRest };
  } finally {
    if (watcher) clearInterval(watcher);
    await sentinel?.stop();
    await rm(dataDir, { recursive: true, force: true });
    await scratch?.drop();
  }
}
