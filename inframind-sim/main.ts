// Entry point of `npm run inframind-sim`: a reference InfraMind that reads observations over the link and proposes
// scale plans for inference deployments. Reads INFRAMIND_* variables; stops on SIGTERM/SIGINT.
import { pino } from 'pino';
import { z } from 'zod';
import { startInframindSim } from './client.js';

const environment = z.object({
  INFRAMIND_ADDRESS: z.string().min(1).default('127.0.0.1:50052'),
  INFRAMIND_TOKEN: z.string({ error: 'a service-account token (POST /api/v1/service-accounts)' }).min(1, 'a service-account token'),
  INFRAMIND_ID: z.string().min(1).default('inframind-sim'),
  INFRAMIND_SIM_SCALE_UP_ABOVE: z.coerce.number().min(0).max(100).default(80),
  INFRAMIND_SIM_SCALE_DOWN_BELOW: z.coerce.number().min(0).max(100).default(30),
  INFRAMIND_SIM_COOLDOWN_SECONDS: z.coerce.number().int().min(0).default(300),
  INFRAMIND_SIM_MIN_REPLICAS: z.coerce.number().int().min(0).default(1),
  INFRAMIND_SIM_MAX_REPLICAS: z.coerce.number().int().min(1).max(1000).default(20),
  LOG_LEVEL: z.string().default('info'),
}).refine((env) => env.INFRAMIND_SIM_SCALE_DOWN_BELOW < env.INFRAMIND_SIM_SCALE_UP_ABOVE, {
  message: 'must lie below INFRAMIND_SIM_SCALE_UP_ABOVE, so that utilisation between the two changes nothing',
  path: ['INFRAMIND_SIM_SCALE_DOWN_BELOW'],
});

const parsed = environment.safeParse(process.env);
if (!parsed.success) {
  process.stderr.write(`inframind-sim: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}\n`);
  process.exit(2);
}
const env = parsed.data;
const logger = pino({ level: env.LOG_LEVEL, base: { service: 'inframind-sim', inframindId: env.INFRAMIND_ID } });
const sim = startInframindSim({
  address: env.INFRAMIND_ADDRESS,
  token: env.INFRAMIND_TOKEN,
  inframindId: env.INFRAMIND_ID,
  settings: {
    scaleUpAbove: env.INFRAMIND_SIM_SCALE_UP_ABOVE,
    scaleDownBelow: env.INFRAMIND_SIM_SCALE_DOWN_BELOW,
    cooldownMs: env.INFRAMIND_SIM_COOLDOWN_SECONDS * 1000,
    minReplicas: env.INFRAMIND_SIM_MIN_REPLICAS,
    maxReplicas: env.INFRAMIND_SIM_MAX_REPLICAS,
  },
  logger,
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'stopping');
    sim.stop();
  });
}
