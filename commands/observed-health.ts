// Observed deployment health for the SLA and SLO rules: uptime from the readiness the cluster reactor recorded (the
// deployment-uptime read model), p99 latency and success rate from the workload's metrics (Prometheus, when
// configured), and SENTINEL_HEALTH_FILE as an override.
//
// A decision is judged while the process holds its admission turn, one judgement at a time, so `health` answers
// from memory and never waits on the database or Prometheus. A background refresh (every 15 s by default) reads
// the deployments observed up or down (at most `maxDeployments`, those that changed last first) and replaces the
// cache whole, so it never grows past that bound. Before the first refresh has finished, and for a deployment the
// last refresh did not reach, the answer is undefined: the rules read that as "no observation". A part older than
// `maxAgeSeconds` (the database or Prometheus unreachable for a while) is dropped rather than judged on.
// A deployment the file names takes each part the file gives (uptime; latency and success rate) from the file.
import type { HealthSources, PolicyInputs, WORKLOAD_TYPES } from '../domain/policy.js';
import type { HealthSource } from './policy-engine.js';

/** One deployment's uptime by window in days: only the windows that hold an observation. */
export interface ObservedUptime {
  deploymentId: string;
  workloadType?: (typeof WORKLOAD_TYPES)[number];
  uptime: Record<string, number>;
}

/** Where uptime comes from: the deployment-uptime read model. */
export interface UptimeReader {
  /** The deployments observed up or down at `now`, at most `limit`, with their uptime over each window. */
  observedUptimes(now: Date, windowsDays: readonly number[], limit: number): Promise<ObservedUptime[]>;
}

/** What a workload's metrics say of one deployment; a signal with no answer is absent. */
export interface LatencyObservation {
  latencyP99Ms?: number;
  successRate?: number;
}

/** Where latency and success rate come from: Prometheus. */
export interface LatencyReader {
  /** Latency and success of each deployment given, keyed by id; one with no answer is left out. */
  observe(deployments: readonly Pick<ObservedUptime, 'deploymentId' | 'workloadType'>[]): Promise<Map<string, LatencyObservation>>;
}

export interface ObservedHealthLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface ObservedHealthOptions {
  uptime: UptimeReader;
  /** Absent without PROMETHEUS_URL: latency and success rate are then unknown unless the file gives them. */
  latency?: LatencyReader;
  /** The SENTINEL_HEALTH_FILE source, read on every ask (it is a local file, re-read only when it changes). */
  file?: HealthSource;
  /** How often the cache is refreshed (SENTINEL_HEALTH_REFRESH_SECONDS, default 15). */
  refreshSeconds?: number;
  /** Answers older than this are dropped (default four refreshes). */
  maxAgeSeconds?: number;
  /** The most deployments kept (default 10000). */
  maxDeployments?: number;
  /** The uptime windows in days handed to the rules (default 1, 7 and 30); an SLA over another window sees none. */
  windowsDays?: readonly number[];
  now?: () => Date;
  /** Where a failed refresh is reported: it runs on a timer, with no caller to answer. */
  logger?: ObservedHealthLogger;
}

/** What the cache knows of one deployment, and since when. */
interface Known {
  uptime: Record<string, number>;
  uptimeAt: Date;
  latency?: LatencyObservation;
  latencyAt?: Date;
}

/** What GET /deployments/:id/health answers. */
export interface HealthReport {
  deploymentId: string;
  uptime: Record<string, number | null>;
  latencyP99Ms: number | null;
  successRate: number | null;
  source: { uptime: 'observed' | 'file'; latency: HealthSources['latency'] };
  /** When the oldest part shown was observed: the latency's refresh when it came from Prometheus, else now. */
  observedAt: string;
}

/** The latency part of a deployment's health as a health source holds it, for the health report. */
export interface LatestLatency {
  latency?: LatencyObservation;
  latencyAt?: Date;
  file?: PolicyInputs['health'];
}

export const DEFAULT_WINDOWS_DAYS = [1, 7, 30] as const;

export class ObservedHealthSource implements HealthSource {
  private known = new Map<string, Known>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly refreshMs: number;
  private readonly maxAgeMs: number;
  private readonly maxDeployments: number;
  private readonly windows: readonly number[];
  private readonly now: () => Date;

  constructor(private readonly options: ObservedHealthOptions) {
    this.refreshMs = positive('refreshSeconds', options.refreshSeconds ?? 15) * 1000;
    this.maxAgeMs = positive('maxAgeSeconds', options.maxAgeSeconds ?? (this.refreshMs / 1000) * 4) * 1000;
    this.maxDeployments = positive('maxDeployments', options.maxDeployments ?? 10_000);
    this.windows = options.windowsDays ?? DEFAULT_WINDOWS_DAYS;
    this.now = options.now ?? (() => new Date());
  }

  /** Refreshes now, then every `refreshSeconds` until `stop`; returns at once, never waiting for the refresh. */
  start(): void {
    if (this.timer) return;
    this.tick();
    this.timer = setInterval(() => this.tick(), this.refreshMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a refresh under way. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.refreshing?.catch(() => undefined);
  }

  /** Reads uptime and latency of the observed deployments into the cache; a call during a refresh joins it. */
  refresh(): Promise<void> {
    this.refreshing ??= this.refreshOnce().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** From memory (and the override file): never a round trip to the database or Prometheus. */
  async health(deploymentId: string): Promise<PolicyInputs['health']> {
    const file = await this.options.file?.health(deploymentId);
    const known = this.fresh(deploymentId);
    const { uptime, latency, source } = combine(file, known?.uptime, known?.latency);
    if (uptime === undefined && latency.latencyP99Ms === undefined && latency.successRate === undefined) return undefined;
    return { ...(uptime ? { uptime } : {}), ...latency, source };
  }

  /** The latency part as held now, and the file's entry, for the health report. */
  async latest(deploymentId: string): Promise<LatestLatency> {
    const file = await this.options.file?.health(deploymentId);
    const known = this.fresh(deploymentId);
    return { ...(file ? { file } : {}), ...(known?.latency ? { latency: known.latency, latencyAt: known.latencyAt } : {}) };
  }

  /** How many deployments the cache holds. */
  get size(): number {
    return this.known.size;
  }

  private async refreshOnce(): Promise<void> {
    const now = this.now();
    const uptimes = await this.options.uptime.observedUptimes(now, this.windows, this.maxDeployments);
    let latency: Map<string, LatencyObservation> | undefined;
    if (this.options.latency) {
      try {
        latency = await this.options.latency.observe(uptimes);
      } catch (error) {
        // Uptime is still worth having; the latency of the last refresh stays until it is too old.
        this.report(error, 'could not read latency and success rate from Prometheus; keeping the last answers until they are too old');
      }
    }
    const known = new Map<string, Known>();
    for (const { deploymentId, uptime } of uptimes) {
      const before = this.known.get(deploymentId);
      const observed = latency ? latency.get(deploymentId) : before?.latency;
      const at = latency ? now : before?.latencyAt;
      known.set(deploymentId, { uptime, uptimeAt: now, ...(observed && at ? { latency: observed, latencyAt: at } : {}) });
    }
    this.known = known;
  }

  /** The cache's entry without the parts that are too old to judge on. */
  private fresh(deploymentId: string): Known | undefined {
    const known = this.known.get(deploymentId);
    if (!known) return undefined;
    const oldest = this.now().getTime() - this.maxAgeMs;
    const uptimeFresh = known.uptimeAt.getTime() >= oldest;
    const latencyFresh = known.latencyAt !== undefined && known.latencyAt.getTime() >= oldest;
    return {
      uptime: uptimeFresh ? known.uptime : {},
      uptimeAt: known.uptimeAt,
      ...(latencyFresh ? { latency: known.latency, latencyAt: known.latencyAt } : {}),
    };
  }

  /** One refresh at a time: a refresh slower than the interval is not stacked on. */
  private tick(): void {
    if (this.refreshing) return;
    this.refresh().catch((error: unknown) => this.report(error, 'could not refresh observed deployment health; it runs again at the next interval'));
  }

  private report(error: unknown, message: string): void {
    const fields = { err: error instanceof Error ? error.message : String(error) };
    if (this.options.logger) this.options.logger.warn(fields, message);
    else process.emitWarning(`${message} (${fields.err})`, 'ObservedHealthWarning');
  }
}

/**
 * What GET /deployments/:id/health answers: uptime observed now (or the file's), and latency and success rate as
 * the health source holds them (none without one).
 */
export function healthReport(deploymentId: string, observedUptime: Record<string, number | null>, latest: LatestLatency, now: Date): HealthReport {
  const observed = Object.fromEntries(Object.entries(observedUptime).filter((entry): entry is [string, number] => entry[1] !== null));
  const { uptime, latency, source } = combine(latest.file, observed, latest.latency);
  const shown = source.uptime === 'file' ? { ...nulls(observedUptime), ...uptime } : observedUptime;
  const observedAt = source.latency === 'prometheus' && latest.latencyAt ? latest.latencyAt : now;
  return {
    deploymentId,
    uptime: shown,
    latencyP99Ms: latency.latencyP99Ms ?? null,
    successRate: latency.successRate ?? null,
    // The read model answered for this deployment: windows without an observation are shown as null.
    source: { uptime: source.uptime === 'file' ? 'file' : 'observed', latency: source.latency },
    observedAt: observedAt.toISOString(),
  };
}

/** The file's parts where it gives them, the observed ones otherwise, and which is which. */
function combine(
  file: PolicyInputs['health'],
  observedUptime: Record<string, number> | undefined,
  observedLatency: LatencyObservation | undefined,
): { uptime?: Record<string, number>; latency: LatencyObservation; source: HealthSources } {
  const fileLatency = file?.latencyP99Ms !== undefined || file?.successRate !== undefined;
  const observedAny = observedUptime !== undefined && Object.keys(observedUptime).length > 0;
  const uptime = file?.uptime ?? (observedAny ? observedUptime : undefined);
  const latency = fileLatency ? pick(file!) : pick(observedLatency ?? {});
  return {
    ...(uptime ? { uptime } : {}),
    latency,
    source: {
      uptime: file?.uptime ? 'file' : uptime ? 'observed' : 'none',
      latency: fileLatency ? 'file' : latency.latencyP99Ms !== undefined || latency.successRate !== undefined ? 'prometheus' : 'none',
    },
  };
}

function pick({ latencyP99Ms, successRate }: LatencyObservation): LatencyObservation {
  return { ...(latencyP99Ms !== undefined ? { latencyP99Ms } : {}), ...(successRate !== undefined ? { successRate } : {}) };
}

function nulls(uptime: Record<string, number | null>): Record<string, null> {
  return Object.fromEntries(Object.keys(uptime).map((days) => [days, null]));
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number, not ${value}`);
  return value;
}
