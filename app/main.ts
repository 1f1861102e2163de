// Entry point of `npm start`: reads the configuration, runs the configured role, shuts down on SIGTERM/SIGINT.
import { pino } from 'pino';
import { checkConfig, ConfigError, loadConfig, type Config, type ConfigFiles } from './config.js';
import type { RunningSentinel } from './sentinel.js';

/** Exit status of a configuration Sentinel refuses, in the environment or in a file or address it names. */
const EXIT_CONFIG = 2;

function refuse(error: ConfigError): never {
  process.stderr.write(`sentinel: ${error.message}\n`);
  process.exit(EXIT_CONFIG);
}

let config: Config;
let files: ConfigFiles;
try {
  config = loadConfig();
  files = await checkConfig(config);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  refuse(error);
}
// Loaded only once the configuration is good, so that a refusal comes at once.
const { startSentinel } = await import('./sentinel.js');

const logger = pino({ level: config.LOG_LEVEL, base: { service: 'sentinel', role: config.SENTINEL_ROLE } });

// Signals are handled from the start: one that arrives while Sentinel is still starting stops it cleanly once it
// has started, rather than killing it halfway through (after the port is bound, say, but before the first admin
// is recorded).
let sentinel: RunningSentinel | undefined;
let stopping = false;
const stop = (running: RunningSentinel) => {
  running.stop().then(
    () => {
      logger.info('stopped');
      process.exit(0);
    },
    (error: unknown) => {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    },
  );
};
const shutdown = (signal: NodeJS.Signals) => {
  if (stopping) {
    logger.warn({ signal }, 'second signal: exiting at once');
    process.exit(1);
  }
  stopping = true;
  logger.info({ signal }, sentinel ? 'shutting down' : 'shutting down once start-up completes');
  if (sentinel) stop(sentinel);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
// A failure nothing caught still ends the process, as Node ends it (status 1), but as a log line like every other,
// saying whether it came while stopping, so that it can be found and traced to its cause.
const crash = (kind: string) => (error: unknown) => {
  logger.fatal({ err: error, stopping }, `${kind}: sentinel exits`);
  process.exit(1);
};
process.on('uncaughtException', crash('uncaught exception'));
process.on('unhandledRejection', crash('unhandled rejection'));

try {
  sentinel = await startSentinel(config, logger, files);
  if (stopping) stop(sentinel);
} catch (error) {
  logger.fatal({ err: error }, 'sentinel failed to start');
  process.exit(1);
}
