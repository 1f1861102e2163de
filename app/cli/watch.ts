// `sentinel deployment watch`: follows a deployment through the query API until its rollout settles.
import { setTimeout as sleep } from 'node:timers/promises';
import { RequestRefused, type ApiClient } from './http-client.js';
import { deploymentView, type DeploymentView } from './views.js';

/** The statuses a rollout ends in; Available is the one that means it worked. */
export const SETTLED = ['Available', 'Failed', 'RolledBack', 'Degraded', 'Deleted'] as const;

export interface WatchOptions {
  /** A position a write answered with: the first read waits until the read side has passed it. */
  after?: string;
  intervalMs: number;
  print(line: string): void;
}

/** Prints a line whenever the status, replicas or revision change, and answers the status it settled in. */
export async function watchDeployment(client: ApiClient, id: string, options: WatchOptions): Promise<string> {
  const route = `/deployments/${encodeURIComponent(id)}`;
  let after = options.after;
  let shown: string | undefined;
  for (;;) {
    const seen = await read(client, route, after);
    if (seen) {
      // Once the read side has shown the write, every later read is at least as new.
      after = undefined;
      const line = summary(seen);
      if (line !== shown) options.print(`${new Date().toISOString().slice(11, 19)}  ${line}`);
      shown = line;
      if ((SETTLED as readonly string[]).includes(seen.status)) return seen.status;
    }
    await sleep(options.intervalMs);
  }
}

/** The deployment, or undefined while the read side has not reached `after` yet (it answers 503 then). */
async function read(client: ApiClient, route: string, after: string | undefined): Promise<DeploymentView | undefined> {
  try {
    return await client.get(route, deploymentView, { after });
  } catch (error) {
    if (after !== undefined && error instanceof RequestRefused && error.status === 503) return undefined;
    throw error;
  }
}

function summary(d: DeploymentView): string {
  const status = d.paused ? `${d.status} (paused)` : d.status;
  const cause = d.status !== 'Available' && d.lastCause ? ` — ${d.lastCause}` : '';
  // The read side counts updated replicas only while a rollout progresses.
  const updated = d.status === 'Progressing' && d.updatedReplicas !== null ? `, ${d.updatedReplicas} updated` : '';
  return `${status.padEnd(12)} ${d.readyReplicas ?? 0}/${d.replicas} ready${updated}, revision ${d.currentRevision}${cause}`;
}
