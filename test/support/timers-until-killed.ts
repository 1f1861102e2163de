// Child process for the durable-timer kill test: runs the timer service on a database until it is killed, schedules
// (and cancels) the timers it is told to, and prints one line per step: `ready`, `scheduled <id> <dueAt>`,
// `cancelled <id>`, `delivering <id>`, `delivered <id>`.
//   TIMERS_DATABASE_URL (PostgreSQL) or TIMERS_PGLITE_DIR: where.
//   TIMERS_SCHEDULE: JSON [{timerId, inMs, cancel?}], due `inMs` after it is scheduled.
//   TIMERS_STALL: comma-separated timer ids whose handler, once its effect is recorded, never returns here: as if the
//   process died between the effect and the checkpoint that says it is done.
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { z } from 'zod';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { AdvisoryLease, inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { openPglite, openPostgres } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { ReactorRuntime } from '../../reactors/reactor-runtime.js';
import { TimerService } from '../../reactors/timers.js';
import { PROBE_OWNER, probeHandler } from './timers.js';

const schedule = z
  .array(z.strictObject({ timerId: z.string(), inMs: z.number().int().min(0), cancel: z.boolean().optional() }))
  .parse(JSON.parse(process.env.TIMERS_SCHEDULE ?? '[]'));
const stalled = new Set((process.env.TIMERS_STALL ?? '').split(',').filter(Boolean));
const url = process.env.TIMERS_DATABASE_URL;

const logger = pino({ level: process.env.TEST_LOG ?? 'silent' }, pino.destination(2));
const context = (): CommandContext => ({ actor: { id: 'timers-until-killed', kind: 'system' }, correlationId: randomUUID(), causationId: randomUUID() });

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

const db = url ? openPostgres(url) : await openPglite(process.env.TIMERS_PGLITE_DIR);
const store = await PostgresEventStore.open(db);
await migrateSentinel(db.knex);
const handler = new CommandHandler(store);
const service = new TimerService(handler, { logger });
const probe = service.register(
  PROBE_OWNER,
  probeHandler(handler, {
    delivering: (timer) => say(`delivering ${timer.timerId}`),
    async delivered(timer) {
      say(`delivered ${timer.timerId}`);
      if (stalled.has(timer.timerId)) await new Promise<never>(() => undefined);
    },
  }),
);
const runtime = new ReactorRuntime(db.knex, store, { logger, lease: url ? new AdvisoryLease(url) : inProcessLease, standbyRetryMs: 100 });
runtime.add(service);

for (const { timerId, inMs, cancel } of schedule) {
  const dueAt = new Date(Date.now() + inMs);
  await probe.schedule({ timerId, dueAt, payload: { note: 'scheduled before the kill' } }, context());
  say(`scheduled ${timerId} ${dueAt.toISOString()}`);
  if (cancel) {
    await probe.cancel(timerId, 'cancelled before the kill', context());
    say(`cancelled ${timerId}`);
  }
}
say('ready');
