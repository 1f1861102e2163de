// One node agent per node of the built-in cluster simulator, in this process, with simulated GPUs that follow the
// pods placed on each node: on the embedded default the fleet endpoints answer with data within a minute of start.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { startAgent, type RunningAgent } from '../agent/agent.js';
import { loadAgentConfig } from '../agent/config.js';
import { simulatedGpus } from '../agent/simulated-gpus.js';
import type { ClusterSimulator } from '../adapters/kubernetes/simulator/index.js';
import type { AccessService } from '../commands/access.js';

/** The service account the simulated agents push with. */
export const SIMULATED_AGENTS_ACCOUNT = 'simulated-node-agents';
/** How often the simulated agents collect and send: often enough that a change shows within seconds. */
const COLLECT_SECONDS = 5;

export interface SimulatedAgentsDeps {
  simulator: ClusterSimulator;
  clusterId: string;
  /** Where the telemetry ingest listens in this process. */
  telemetryHost: string;
  telemetryPort: number;
  access: Pick<AccessService, 'ownServiceToken'>;
  logger: Logger;
}

export async function startSimulatedAgents(deps: SimulatedAgentsDeps): Promise<{ stop(): Promise<void> }> {
  const context = { actor: { id: 'sentinel', kind: 'system' as const }, correlationId: randomUUID(), causationId: randomUUID(), source: 'simulated-agents' };
  const token = await deps.access.ownServiceToken(SIMULATED_AGENTS_ACCOUNT, 'node agents of the built-in cluster simulator', context);
  // An IPv6 wildcard or address needs brackets in host:port; the ingest listens on every address of a wildcard.
  const host = deps.telemetryHost === '0.0.0.0' ? '127.0.0.1' : deps.telemetryHost === '::' ? '[::1]' : deps.telemetryHost.includes(':') ? `[${deps.telemetryHost}]` : deps.telemetryHost;
  const agents: RunningAgent[] = [];
  try {
    for (const { node } of deps.simulator.placements()) {
      const config = loadAgentConfig({
        AGENT_SENTINEL_ADDRESS: `${host}:${deps.telemetryPort}`,
        AGENT_TOKEN: token,
        AGENT_CLUSTER_ID: deps.clusterId,
        AGENT_NODE_NAME: node,
        AGENT_COLLECT_SECONDS: String(COLLECT_SECONDS),
        AGENT_BATCH_MAX_SECONDS: String(COLLECT_SECONDS),
        AGENT_METRICS_PORT: '0',
      });
      const placement = () => deps.simulator.placements().find((placed) => placed.node === node) ?? { pods: [] };
      agents.push(await startAgent({ config, logger: deps.logger.child({ component: 'simulated-agent', node }), collectors: [simulatedGpus(node, placement)] }));
    }
  } catch (error) {
    await Promise.allSettled(agents.map((agent) => agent.stop()));
    throw error;
  }
  deps.logger.info({ agents: agents.length }, 'simulated node agents are pushing');
  return {
    async stop() {
      await Promise.allSettled(agents.map((agent) => agent.stop()));
    },
  };
}
