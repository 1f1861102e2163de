// The clients of bench:projections' write → visible figures: one that registers a workload and polls the query
// API until it is there, and a background load of commands at a steady rate. They run in the bench's own process,
// or in a worker thread of it (their own event loop, as clients elsewhere would have), see `runInWorker`.
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

export interface VisibilityOptions {
  /** The API's base URL, `http://host:port/api/v1`. */
  api: string;
  accessToken: string;
  samples: number;
  commandsPerSecond: number;
}

export interface LoadFigures {
  sent: number;
  failed: number;
  seconds: number;
  statuses: Record<string, number>;
}

export interface VisibilityFigures {
  /** Milliseconds from each write's answer to the first query that shows it, on a quiet system. */
  quiet: number[];
  /** The same, under the background load. */
  loaded: number[];
  /** Under the load, how long the query that first showed each write took by itself: the read's share of `loaded`. */
  loadedReads: number[];
  load: LoadFigures;
}

/** Told when the loaded samples begin and end, so that the server's side can measure over the same span. */
export interface PhaseListener {
  loadedSamples(phase: 'start' | 'end'): void;
}

export async function runVisibilityClients(options: VisibilityOptions, listener: PhaseListener): Promise<VisibilityFigures> {
  const { api } = options;
  const headers = { authorization: `Bearer ${options.accessToken}`, 'content-type': 'application/json' };
  const register = (name: string, namespace: string) =>
    fetch(`${api}/workloads`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name, namespace, type: 'batch', image: 'busybox', resources: { cpu: '1', memory: '1Gi' } }),
    });

  /** Write → visible: a workload registered through the API, polled through the query API (no ?after=) until it is there. */
  const sample = async (count: number, prefix: string, reads: number[] = []): Promise<number[]> => {
    const times: number[] = [];
    for (let i = 0; i < count; i += 1) {
      const response = await register(`${prefix}-${i}`, 'bench');
      const accepted = performance.now();
      const { id } = (await response.json()) as { id: string };
      for (;;) {
        const asked = performance.now();
        const read = await fetch(`${api}/workloads/${id}`, { headers });
        await read.arrayBuffer();
        if (read.status === 200) {
          reads.push(performance.now() - asked);
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      times.push(performance.now() - accepted);
    }
    return times;
  };

  const quiet = await sample(options.samples, 'w');

  // The same, while other clients send commands at a steady rate: registrations and spec updates of their own
  // workloads, each a command through the API, its policy checks and its events.
  const load: LoadFigures = { sent: 0, failed: 0, seconds: 0, statuses: {} };
  let running = true;
  const started = performance.now();
  const own: string[] = [];
  const inFlight = new Set<Promise<void>>();
  const command = async (n: number) => {
    try {
      const target = n % 2 === 1 ? own[Math.floor(Math.random() * own.length)] : undefined;
      const response = target
        ? await fetch(`${api}/workloads/${target}`, { method: 'PATCH', headers, body: JSON.stringify({ image: `busybox:${n}` }) })
        : await register(`load-${n}`, 'load');
      const body = (await response.json()) as { id?: string };
      if (!response.ok) {
        load.failed += 1;
        load.statuses[response.status] = (load.statuses[response.status] ?? 0) + 1;
      } else if (!target && body.id) own.push(body.id);
    } catch {
      load.failed += 1;
      load.statuses['error'] = (load.statuses['error'] ?? 0) + 1;
    }
  };
  const background = (async () => {
    const interval = 1000 / options.commandsPerSecond;
    for (let n = 0; running; n += 1) {
      // Open loop: commands start on schedule whatever the answers take, up to a bound on those outstanding.
      const due = started + n * interval;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (inFlight.size >= 100) continue;
      load.sent += 1;
      const pending: Promise<void> = command(n).finally(() => inFlight.delete(pending));
      inFlight.add(pending);
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  let loaded: number[];
  const loadedReads: number[] = [];
  listener.loadedSamples('start');
  try {
    loaded = await sample(options.samples, 'u', loadedReads);
  } finally {
    listener.loadedSamples('end');
    running = false;
    await background;
    await Promise.all(inFlight);
    load.seconds = (performance.now() - started) / 1000;
  }
  return { quiet, loaded, loadedReads, load };
}

type WorkerMessage = { kind: 'phase'; phase: 'start' | 'end' } | { kind: 'done'; figures: VisibilityFigures } | { kind: 'failed'; message: string };

/**
 * Runs the clients in a worker thread: requests and answers are then handled on a loop of their own, not on the
 * server's, as for clients on other machines (the two still share this machine's cores).
 */
export function runInWorker(options: VisibilityOptions, listener: PhaseListener): Promise<VisibilityFigures> {
  return new Promise((resolve, reject) => {
    // A worker does not inherit tsx's loader: its first script registers it, then loads this module.
    const entry = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); })`;
    const worker = new Worker(entry, { eval: true, workerData: { visibilityClients: options } });
    worker.on('message', (message: WorkerMessage) => {
      if (message.kind === 'phase') listener.loadedSamples(message.phase);
      else if (message.kind === 'done') resolve(message.figures);
      else reject(new Error(message.message));
    });
    worker.on('error', reject);
    worker.on('exit', (code) => reject(new Error(`the clients' worker exited (${code}) before it reported`)));
  });
}

if (!isMainThread && parentPort && (workerData as { visibilityClients?: VisibilityOptions } | null)?.visibilityClients) {
  const port = parentPort;
  const post = (message: WorkerMessage) => port.postMessage(message);
  runVisibilityClients((workerData as { visibilityClients: VisibilityOptions }).visibilityClients, {
    loadedSamples: (phase) => post({ kind: 'phase', phase }),
  }).then(
    (figures) => post({ kind: 'done', figures }),
    (error: unknown) => post({ kind: 'failed', message: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
  );
}
