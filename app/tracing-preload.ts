// Loaded before Sentinel with `tsx --import ./app/tracing-preload.ts app/main.ts`: starts tracing, when the OTEL_*
// variables ask for it, before the modules the http, pg and gRPC instrumentations patch are loaded, so that every
// one of them is traced. Without it Sentinel starts tracing itself, later, and only pg's client is patched.
import { ConfigError, loadConfig } from './config.js';
import { installTracing } from './tracing.js';

try {
  await installTracing(loadConfig().SENTINEL_ROLE);
} catch (error) {
  // main.ts refuses the configuration and says why; tracing would not have been started for it anyway.
  if (!(error instanceof ConfigError)) throw error;
}
