// Entry point of `npm run agent`: reads AGENT_* variables, runs the node agent, stops it on SIGTERM/SIGINT.
import { pino } from 'pino';
import { startAgent, type RunningAgent } from './agent.js';
import { AgentConfigError, loadAgentConfig, readCa, readToken, type AgentConfig } from './config.js';

/** Exit status of a configuration the agent refuses, as Sentinel's own. */
const EXIT_CONFIG = 2;

let config: AgentConfig;
try {
  config = loadAgentConfig();
  // The token file and the CA are read once now, so that a wrong path stops the agent at once rather than at every reconnect.
  if (config.push) await readToken(config.push.token);
  if (config.push?.tls.mode === 'ca-file') await readCa(config.push.tls.caFile);
} catch (error) {
  if (!(error instanceof AgentConfigError)) throw error;
  process.stderr.write(`sentinel-agent: ${error.message}\n`);
  process.exit(EXIT_CONFIG);
}

const logger = pino({ level: config.logLevel, base: { service: 'sentinel-agent', node: config.nodeName } });

let agent: RunningAgent | undefined;
let stopping = false;
const shutdown = (signal: NodeJS.Signals) => {
  if (stopping) {
    logger.warn({ signal }, 'second signal: exiting at once');
    process.exit(1);
  }
  stopping = true;
  logger.info({ signal }, 'stopping');
  // A signal during start-up exits at once: nothing has been collected or buffered yet.
  (agent?.stop() ?? Promise.resolve()).then(
    () => process.exit(0),
    (error: unknown) => {
      logger.error({ err: error }, 'stop failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

try {
  agent = await startAgent({ config, logger });
} catch (error) {
  logger.fatal({ err: error }, 'agent failed to start');
  process.exit(1);
}
