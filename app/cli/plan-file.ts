// The body of `sentinel plan submit -f`: a YAML or JSON file, or stdin for `-f -`.
import { readFile } from 'node:fs/promises';
import { parse, YAMLParseError } from 'yaml';
import { Exit, EXIT_USAGE, messageOf } from './exit.js';
import { readStdin } from './stdin.js';

/** YAML is a superset of JSON, so one parser reads both. */
export async function readPlanFile(file: string): Promise<unknown> {
  const name = file === '-' ? 'stdin' : file;
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (error) {
    throw new Exit(`cannot read the plan from ${name}: ${messageOf(error)}`, EXIT_USAGE);
  }
  let plan: unknown;
  try {
    plan = parse(text);
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` at line ${error.linePos[0].line}, column ${error.linePos[0].col}` : '';
    throw new Exit(`the plan in ${name} is neither YAML nor JSON${where}: ${messageOf(error).split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`, EXIT_USAGE);
  }
  if (plan === null || typeof plan !== 'object' || Array.isArray(plan)) {
    throw new Exit(`the plan in ${name} must be a mapping with reason and actions (see POST /api/v1/action-plans)`, EXIT_USAGE);
  }
  return plan;
}
