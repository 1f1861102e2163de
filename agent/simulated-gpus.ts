// A GPU source for a simulated node: readings under DCGM-exporter names whose values follow the pods placed on the
// node, so that a scale-up on the simulated cluster visibly raises utilisation, memory, temperature and power.
import type { Sample } from '../adapters/grpc/telemetry-proto.js';
import type { GpuSource } from './collector.js';

/** What runs on the node now: its GPUs and the pods bound to it, with the GPUs each holds. */
export interface SimulatedNode {
  gpus?: { count: number; sku: string };
  pods: readonly { namespace: string; name: string; gpus: number; ready: boolean }[];
}

/** Frame buffer of the simulated GPUs, MiB (an 80 GB card). */
const FB_MIB = 81_920;

/**
 * `node()` is asked on every collection. GPUs are handed to the node's GPU pods in order, as the device plugin
 * would; a GPU held by a ready pod works at 55–95% (a slow wave, different per GPU), one held by a pod still
 * starting loads its model (memory, little compute), a free one idles.
 */
export function simulatedGpus(hostname: string, node: () => SimulatedNode, now: () => number = Date.now): GpuSource {
  return {
    name: 'gpu',
    async collect(): Promise<Sample[]> {
      const { gpus, pods } = node();
      if (!gpus) return [];
      const at = now();
      const holders = pods.flatMap((pod) => Array.from({ length: pod.gpus }, () => pod));
      return Array.from({ length: gpus.count }, (_, index) => {
        const holder = holders[index];
        const wave = (Math.sin(at / 60_000 + index * 1.7) + 1) / 2;
        const utilisation = !holder ? 0 : holder.ready ? Math.round(55 + 40 * wave) : 3;
        const memoryUsed = !holder ? 0 : Math.round(FB_MIB * (holder.ready ? 0.6 + 0.25 * wave : 0.4));
        const labels: Record<string, string> = {
          gpu: String(index),
          UUID: `GPU-sim-${hostname}-${index}`,
          device: `nvidia${index}`,
          modelName: gpus.sku,
          Hostname: hostname,
          ...(holder ? { namespace: holder.namespace, pod: holder.name } : {}),
        };
        const sample = (metric: string, value: number): Sample => ({ metric, labels, value, timestampUnixMs: at });
        return [
          sample('DCGM_FI_DEV_GPU_UTIL', utilisation),
          sample('DCGM_FI_DEV_FB_USED', memoryUsed),
          sample('DCGM_FI_DEV_FB_FREE', FB_MIB - memoryUsed),
          sample('DCGM_FI_DEV_GPU_TEMP', Math.round(34 + utilisation * 0.42)),
          sample('DCGM_FI_DEV_POWER_USAGE', Math.round((62 + utilisation * 3.4) * 10) / 10),
          sample('DCGM_FI_DEV_SM_CLOCK', utilisation > 0 ? 1410 : 210),
          sample('DCGM_FI_DEV_ECC_DBE_VOL_TOTAL', 0),
          sample('DCGM_FI_DEV_CLOCK_THROTTLE_REASONS', 0),
        ];
      }).flat();
    },
  };
}
