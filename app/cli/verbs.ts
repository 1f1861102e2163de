// The sentinel verbs that talk to a running Sentinel over its HTTP API: get, describe, the deployment
// commands, deployment watch and plans. `registerApiVerbs` adds them, with login and logout, to the program.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { registerAuthVerbs, URL_OPTION } from './auth-verbs.js';
import { Exit, EXIT_FAILURE, EXIT_USAGE } from './exit.js';
import { ApiClient, serverUrl } from './http-client.js';
import { KIND_NAMES, KINDS, kindNamed, type Kind } from './kinds.js';
import { FORMATS, print, printData, type Format } from './output.js';
import { readPlanFile } from './plan-file.js';
import { credentialsFor } from './session.js';
import { SETTLED, watchDeployment } from './watch.js';
import { writeResult, type WriteResult } from './views.js';

interface ApiOptions {
  url?: string;
}

interface OutputOptions extends ApiOptions {
  output: Format;
}

interface ListOptions extends OutputOptions {
  after?: string;
  filter?: Record<string, string>;
  status?: string;
  limit?: number;
}

function clientFor(options: ApiOptions): ApiClient {
  const server = serverUrl(options.url);
  return new ApiClient(server, credentialsFor(server));
}

function kindOf(name: string): Kind {
  const found = kindNamed(name);
  if (!found) throw new Exit(`unknown kind "${name}": one of ${KINDS.map((k) => k.name).join(', ')}`, EXIT_USAGE);
  return found;
}

function wholeNumber(what: string, min = 1) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(parsed) || parsed < min) throw new InvalidArgumentError(`${what}: a whole number from ${min} up`);
    return parsed;
  };
}

function keyValue(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const at = value.indexOf('=');
  if (at < 1) throw new InvalidArgumentError('a filter as key=value, such as status=Available');
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
}

const AFTER_OPTION = ['--after <position>', 'the position a write answered with: wait until the read side shows it'] as const;

const outputOption = () => new Option('-o, --output <format>', 'how to print the answer').choices(FORMATS).default('table');

// ---- get and describe --------------------------------------------------------------------------------------

async function get(kind: Kind, id: string | undefined, options: ListOptions): Promise<void> {
  const filters = { ...options.filter, ...(options.status ? { status: options.status } : {}) };
  if (id !== undefined && (Object.keys(filters).length > 0 || options.limit !== undefined)) {
    throw new Exit('filters and --limit apply to lists: give an id or filters, not both', EXIT_USAGE);
  }
  const client = clientFor(options);
  const read = { after: options.after };
  const listing = id === undefined ? await kind.list(client, filters, options.limit, read) : await kind.one(client, id, read);
  if (options.output === 'table') print(await listing.table());
  else printData(id === undefined ? listing.items : listing.items[0], options.output);
}

function addGetOptions(command: Command): Command {
  return command
    .option(...URL_OPTION)
    .addOption(outputOption())
    .option('--filter <key=value>', 'a filter of the query API, repeatable, such as status=Available (one it does not take is answered with those it does)', keyValue)
    .option('--status <status>', 'only those in this status (the same as --filter status=…)')
    .option('--limit <n>', 'show at most this many (default: all)', wholeNumber('--limit'))
    .option(...AFTER_OPTION)
    .exitOverride();
}

// ---- deployment commands -----------------------------------------------------------------------------------

/** What a write recorded, and how to follow the rollout it starts. */
function reportWrite(what: string, deploymentId: string, result: WriteResult, output: Format): void {
  if (output !== 'table') return printData(result, output);
  const follow = `sentinel deployment watch ${deploymentId}${result.position ? ` --after ${result.position}` : ''}`;
  print(`deployment ${deploymentId}: ${what} recorded (revision ${result.revision})\nfollow the rollout: ${follow}`);
}

async function deploymentWrite(id: string, action: string, body: Record<string, unknown>, options: OutputOptions, what: string) {
  const result = await clientFor(options).post(`/deployments/${encodeURIComponent(id)}/${action}`, writeResult, body);
  reportWrite(what, id, result, options.output);
}

async function watch(id: string, options: ApiOptions & { after?: string; interval: number }): Promise<void> {
  const status = await watchDeployment(clientFor(options), id, { after: options.after, intervalMs: options.interval * 1000, print });
  if (status !== 'Available') throw new Exit(`deployment ${id} settled in ${status}, not Available`, EXIT_FAILURE);
}

// ---- plans -------------------------------------------------------------------------------------------------

async function submitPlan(options: OutputOptions & { file: string }): Promise<void> {
  const body = await readPlanFile(options.file);
  const result = await clientFor(options).post('/action-plans', writeResult, body);
  if (options.output !== 'table') return printData(result, options.output);
  const follow = `sentinel describe plan ${result.id}${result.position ? ` --after ${result.position}` : ''}`;
  print(`plan ${result.id} submitted (revision ${result.revision}): policy validates it, then the reactor carries it out\nfollow it: ${follow}`);
}

async function cancelPlan(id: string, options: OutputOptions & { reason?: string }): Promise<void> {
  const result = await clientFor(options).post(`/action-plans/${encodeURIComponent(id)}/cancel`, writeResult, options.reason ? { reason: options.reason } : {});
  if (options.output !== 'table') return printData(result, options.output);
  print(`plan ${id}: cancelled (revision ${result.revision})`);
}

// ---- registration ------------------------------------------------------------------------------------------

export function registerApiVerbs(program: Command): void {
  registerAuthVerbs(program);

  addGetOptions(
    program
      .command('get')
      .description('list resources as a table (or one, by id)')
      .argument('<kind>', KIND_NAMES)
      .argument('[id]', 'one resource instead of the list'),
  ).action((kind: string, id: string | undefined, options: ListOptions) => get(kindOf(kind), id, options));

  program
    .command('describe')
    .description('one resource in detail: deployments with their revisions and recent history, plans with their actions')
    .argument('<kind>', KIND_NAMES)
    .argument('<id>', 'its id')
    .option(...URL_OPTION)
    .option(...AFTER_OPTION)
    .exitOverride()
    .action(async (kind: string, id: string, options: ApiOptions & { after?: string }) =>
      print(await kindOf(kind).describe(clientFor(options), id, { after: options.after })),
    );

  program
    .command('scale')
    .description('set the number of replicas of a deployment')
    .argument('<deployment-id>')
    .argument('<replicas>', 'from 0 up', wholeNumber('replicas', 0))
    .option(...URL_OPTION)
    .addOption(outputOption())
    .exitOverride()
    .action((id: string, replicas: number, options: OutputOptions) => deploymentWrite(id, 'scale', { replicas }, options, `scale to ${replicas}`));

  program
    .command('rollback')
    .description('roll a deployment back: a new revision copying an earlier one (default: the last that became available)')
    .argument('<deployment-id>')
    .option('--to-revision <n>', 'the revision to go back to', wholeNumber('--to-revision'))
    .option('--reason <text>', 'why, kept with the revision')
    .option(...URL_OPTION)
    .addOption(outputOption())
    .exitOverride()
    .action((id: string, options: OutputOptions & { toRevision?: number; reason?: string }) =>
      deploymentWrite(
        id,
        'rollback',
        { ...(options.toRevision !== undefined ? { toRevision: options.toRevision } : {}), ...(options.reason ? { reason: options.reason } : {}) },
        options,
        options.toRevision !== undefined ? `rollback to revision ${options.toRevision}` : 'rollback',
      ),
    );

  program
    .command('restart')
    .description("restart a deployment's pods")
    .argument('<deployment-id>')
    .option('--reason <text>', 'why')
    .option(...URL_OPTION)
    .addOption(outputOption())
    .exitOverride()
    .action((id: string, options: OutputOptions & { reason?: string }) =>
      deploymentWrite(id, 'restart', options.reason ? { reason: options.reason } : {}, options, 'restart'),
    );

  const deployment = program.command('deployment').description('follow a deployment').exitOverride();
  deployment
    .command('watch')
    .description(`print a deployment's status as it changes until it settles (${SETTLED.join(', ')}); exit 0 when Available, 1 otherwise`)
    .argument('<id>', 'the deployment id')
    .option(...AFTER_OPTION)
    .option('--interval <seconds>', 'how often to look', (value: string) => {
      const seconds = Number(value);
      if (!Number.isFinite(seconds) || seconds < 0.1 || seconds > 60) throw new InvalidArgumentError('a number of seconds from 0.1 to 60');
      return seconds;
    }, 1)
    .option(...URL_OPTION)
    .exitOverride()
    .action(watch);

  const plan = program.command('plan').description('action plans: submit, list, cancel').exitOverride();
  plan
    .command('submit')
    .description('submit an action plan from a YAML or JSON file ({reason, actions, ttlSeconds?, shadow?})')
    .requiredOption('-f, --file <path>', 'the plan file, or - for stdin')
    .option(...URL_OPTION)
    .addOption(outputOption())
    .exitOverride()
    .action(submitPlan);
  addGetOptions(
    plan
      .command('get')
      .description('list plans (or one, by id); the same as get plans')
      .argument('[id]', 'one plan instead of the list'),
  ).action((id: string | undefined, options: ListOptions) => get(kindOf('plans'), id, options));
  plan
    .command('cancel')
    .description('cancel a plan before it is carried out')
    .argument('<id>', 'the plan id')
    .option('--reason <text>', 'why')
    .option(...URL_OPTION)
    .addOption(outputOption())
    .exitOverride()
    .action(cancelPlan);
}
