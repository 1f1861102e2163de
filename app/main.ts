// Entry point of `npm start`: reads the configuration, runs the configured role, shuts down on SIGTERM/SIGINT.
import { pino } from 'pino';
import { ConfigError, loadConfig, type Config } from './config.js';
import { startSentinel } from './sentinel.js';

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`sentinel: ${error.message}\n`);
  process.exit(2);
}

const logger = pino({ level: config.LOG_LEVEL, base: { service: 'sentinel', role: config.SENTINEL_ROLE } });

try {
  const sentinel = await startSentinel(config, logger);
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    sentinel.stop().then(
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
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
} catch (error) {
  logger.fatal({ err: error }, 'sentinel failed to start');
  process.exit(1);
}
