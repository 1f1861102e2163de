// `-o table|json|yaml`: the same answer for a person or for a script.
import { stringify } from 'yaml';

export const FORMATS = ['table', 'json', 'yaml'] as const;
export type Format = (typeof FORMATS)[number];

export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** JSON or YAML of what the server sent. */
export function printData(value: unknown, format: Exclude<Format, 'table'>): void {
  print(format === 'json' ? JSON.stringify(value, null, 2) : stringify(value));
}
