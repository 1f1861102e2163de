// Deployment health for the SLA and SLO rules from a JSON file, until the telemetry pipeline provides it.
import { readFile, stat } from 'node:fs/promises';
import { z } from 'zod';
import type { HealthSource } from '../../commands/policy-engine.js';
import type { PolicyInputs } from '../../domain/policy.js';

const ratio = z.number().min(0).max(1);

/** `{ "<deploymentId>": { "uptime": { "30": 0.9995 }, "latencyP99Ms": 180, "successRate": 0.999 } }` */
export const healthFile = z.record(
  z.string(),
  z.strictObject({
    uptime: z.record(z.string().regex(/^\d+$/, 'a window in days'), ratio).optional(),
    latencyP99Ms: z.number().min(0).optional(),
    successRate: ratio.optional(),
  }),
);

/** Reads the file again whenever it changes, so health can be updated without a restart. */
export class FileHealthSource implements HealthSource {
  private loaded: { mtimeMs: number; health: z.infer<typeof healthFile> } | undefined;

  constructor(private readonly path: string) {}

  async health(deploymentId: string): Promise<PolicyInputs['health']> {
    const { mtimeMs } = await stat(this.path);
    if (this.loaded?.mtimeMs !== mtimeMs) {
      const parsed = healthFile.safeParse(parseJson(this.path, await readFile(this.path, 'utf8')));
      if (!parsed.success) throw new Error(`${this.path}: ${z.prettifyError(parsed.error)}`);
      this.loaded = { mtimeMs, health: parsed.data };
    }
    return this.loaded.health[deploymentId];
  }
}

/** The file was checked at start-up (SENTINEL_HEALTH_FILE); one rewritten since then may have broken. */
function parseJson(path: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${path}: not JSON: ${(error as Error).message}`, { cause: error });
  }
}

/** No health source configured: the SLA and SLO rules see no observations and let changes through. */
export const noHealth: HealthSource = { health: async () => undefined };
