// The cluster simulator's public face: start a loopback HTTPS Kubernetes API with nodes, controllers and fault injection.
import { randomBytes, randomUUID } from 'node:crypto';
import { ControlLoop } from './controllers.js';
import { EventRecorder } from './events.js';
import { Faults, type FaultMatch } from './faults.js';
import { timestamp } from './naming.js';
import { GPU_PRODUCT_LABEL, GPU_RESOURCE, isReady, isTerminal, podGpus } from './pods.js';
import { Registry } from './registry.js';
import { NODES, PODS } from './resources.js';
import { SimulatorServer, SIMULATED_VERSION } from './server.js';
import { ObjectStore } from './store.js';
import { servingCertificate } from './tls.js';
import type { KubeObject, Pod } from './types.js';
import { WatchHub } from './watch.js';

export interface SimNode {
  name: string;
  cpu?: string;
  memory?: string;
  gpus?: { count: number; sku: string };
  labels?: Record<string, string>;
}

export interface SimulatorOptions {
  /** Default: 2 CPU nodes ("sim-cpu-1", "sim-cpu-2", 16 cpu, 64Gi) and 2 GPU nodes ("sim-gpu-1", "sim-gpu-2", 8 x nvidia-a100-80gb each). */
  nodes?: SimNode[];
  /** How long a scheduled pod takes to become Ready; default 200. */
  podReadyAfterMs?: number;
  /** How often controllers reconcile; default 50. */
  controllerIntervalMs?: number;
  /** How many past changes a watch can resume from before 410 Gone; default 1000. */
  watchHistory?: number;
  /** BOOKMARK events on watches that asked allowWatchBookmarks; default 1000. */
  bookmarkIntervalMs?: number;
  /** How many Events the controllers' recorders keep at most, the least recently written going first; default 1000. */
  eventLimit?: number;
}

export interface ClusterSimulator {
  /** https://127.0.0.1:<port> */
  readonly url: string;
  /** The server certificate (self-signed for 127.0.0.1 / localhost). */
  readonly caPem: string;
  /** The bearer token it requires (401 without it). */
  readonly token: string;
  /** A kubeconfig (JSON, which is YAML) with certificate-authority-data, server url and token. */
  kubeconfig(): string;
  faults: {
    /** The next `count` matching requests answer `status` with a Status body. */
    failNext(count: number, status: number, match?: { method?: string; path?: RegExp }): void;
    /** Adds delay to every request (0 to clear). */
    latency(ms: number): void;
    /** Ends every open watch connection abruptly now. */
    dropWatches(): void;
    /** Pods whose image matches never become Ready (readiness keeps failing). */
    neverReady(image: RegExp): void;
    clear(): void;
  };
  /** Like a ResourceQuota: pods beyond it are refused, and their workload reports ReplicaFailure/FailedCreate. */
  setQuota(namespace: string, hard: { pods?: number; gpus?: number }): void;
  /** Each node, its GPUs, and the pods bound to it that have not finished, with the GPUs each holds: what a node agent sees. */
  placements(): NodePlacement[];
  close(): Promise<void>;
}

export interface NodePlacement {
  node: string;
  gpus?: { count: number; sku: string };
  pods: { namespace: string; name: string; gpus: number; ready: boolean }[];
}

export const DEFAULT_NODES: SimNode[] = [
  { name: 'sim-cpu-1', cpu: '16', memory: '64Gi' },
  { name: 'sim-cpu-2', cpu: '16', memory: '64Gi' },
  { name: 'sim-gpu-1', cpu: '64', memory: '512Gi', gpus: { count: 8, sku: 'nvidia-a100-80gb' } },
  { name: 'sim-gpu-2', cpu: '64', memory: '512Gi', gpus: { count: 8, sku: 'nvidia-a100-80gb' } },
];

function nodeObject(node: SimNode, index: number): KubeObject {
  const capacity: Record<string, string> = {
    cpu: node.cpu ?? '16',
    memory: node.memory ?? '64Gi',
    pods: '110',
    'ephemeral-storage': '100Gi',
    ...(node.gpus ? { [GPU_RESOURCE]: String(node.gpus.count) } : {}),
  };
  const now = timestamp();
  const condition = (type: string, status: string, reason: string, message: string) => ({
    type,
    status,
    lastHeartbeatTime: now,
    lastTransitionTime: now,
    reason,
    message,
  });
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: node.name,
      uid: randomUUID(),
      labels: {
        'kubernetes.io/hostname': node.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': 'amd64',
        ...(node.gpus
          ? { [GPU_PRODUCT_LABEL]: node.gpus.sku, 'nvidia.com/gpu.count': String(node.gpus.count), 'nvidia.com/gpu.present': 'true' }
          : {}),
        ...node.labels,
      },
    },
    spec: {},
    status: {
      capacity,
      allocatable: { ...capacity },
      conditions: [
        condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
      ],
      addresses: [
        { type: 'InternalIP', address: `10.0.0.${10 + index}` },
        { type: 'Hostname', address: node.name },
      ],
      nodeInfo: {
        kubeletVersion: SIMULATED_VERSION.gitVersion,
        containerRuntimeVersion: 'containerd://1.7.0',
        operatingSystem: 'linux',
        architecture: 'amd64',
        osImage: 'Sentinel cluster simulator',
        kernelVersion: '6.1.0',
      },
    },
  };
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number, got ${value}`);
  return value;
}

export async function startClusterSimulator(options: SimulatorOptions = {}): Promise<ClusterSimulator> {
  const podReadyAfterMs = options.podReadyAfterMs ?? 200;
  if (!Number.isFinite(podReadyAfterMs) || podReadyAfterMs < 0) throw new RangeError(`podReadyAfterMs must be >= 0, got ${podReadyAfterMs}`);
  const controllerIntervalMs = positive('controllerIntervalMs', options.controllerIntervalMs ?? 50);
  const watchHistory = options.watchHistory ?? 1000;
  if (!Number.isInteger(watchHistory) || watchHistory < 0) throw new RangeError(`watchHistory must be a non-negative integer, got ${watchHistory}`);
  const bookmarkIntervalMs = positive('bookmarkIntervalMs', options.bookmarkIntervalMs ?? 1000);
  const eventLimit = options.eventLimit ?? 1000;
  if (!Number.isInteger(eventLimit) || eventLimit < 1) throw new RangeError(`eventLimit must be a positive integer, got ${eventLimit}`);
  const nodes = options.nodes ?? DEFAULT_NODES;
  const names = new Set(nodes.map((n) => n.name));
  if (names.size !== nodes.length) throw new Error('simulator node names must be unique');

  const certificate = await servingCertificate();
  const token = randomBytes(24).toString('base64url');
  const store = new ObjectStore(watchHistory);
  const registry = new Registry(store);
  const faults = new Faults();
  const events = new EventRecorder(registry, eventLimit);
  const loop = new ControlLoop(registry, faults, events, controllerIntervalMs, podReadyAfterMs);
  registry.onWrite = () => loop.nudge();
  nodes.forEach((node, i) => registry.create(NODES, undefined, nodeObject(node, i), { manager: 'kubelet', internal: true }));
  for (const namespace of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) registry.ensureNamespace(namespace);

  const watches = new WatchHub(registry, { bookmarkIntervalMs });
  const server = new SimulatorServer({ registry, faults, watches, token, certificate, failure: () => loop.failure });
  const port = await server.listen();
  loop.start();
  const url = `https://127.0.0.1:${port}`;
  let closing: Promise<void> | undefined;

  return {
    url,
    caPem: certificate.certPem,
    token,
    kubeconfig: () =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'sentinel-simulator', cluster: { server: url, 'certificate-authority-data': Buffer.from(certificate.certPem).toString('base64') } }],
        users: [{ name: 'sentinel-simulator', user: { token } }],
        contexts: [{ name: 'sentinel-simulator', context: { cluster: 'sentinel-simulator', user: 'sentinel-simulator', namespace: 'default' } }],
        'current-context': 'sentinel-simulator',
        preferences: {},
      }),
    faults: {
      failNext: (count: number, status: number, match?: FaultMatch) => faults.failNext(count, status, match),
      latency: (ms: number) => faults.setLatency(ms),
      dropWatches: () => watches.dropAll(),
      neverReady: (image: RegExp) => faults.neverReady(image),
      clear: () => faults.clear(),
    },
    setQuota: (namespace: string, hard: { pods?: number; gpus?: number }) => {
      registry.setQuota(namespace, { ...hard });
      loop.nudge();
    },
    placements: () => {
      const pods = (registry.list(PODS) as Pod[]).filter((pod) => !isTerminal(pod) && pod.spec.nodeName);
      return nodes.map((node) => ({
        node: node.name,
        ...(node.gpus ? { gpus: { ...node.gpus } } : {}),
        pods: pods
          .filter((pod) => pod.spec.nodeName === node.name)
          .map((pod) => ({ namespace: pod.metadata.namespace ?? 'default', name: pod.metadata.name!, gpus: podGpus(pod), ready: isReady(pod) })),
      }));
    },
    close: () => {
      closing ??= (async () => {
        loop.stop();
        await server.close();
      })();
      return closing;
    },
  };
}
