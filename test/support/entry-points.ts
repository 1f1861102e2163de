// How a test starts one of Sentinel's entry points in a child process: the bundle `npm test` made of it before the
// workers started (test/support/child-bundles.cjs), or its source through tsx where there is none.
import { existsSync } from 'node:fs';
import path from 'node:path';

/** The node arguments that run the TypeScript entry point (a path from the repository's root, or absolute). */
export function nodeArgsFor(entry: string): string[] {
  const source = path.resolve(entry);
  const bundles = process.env['SENTINEL_TEST_BUNDLES'];
  if (bundles) {
    const bundle = path.join(bundles, path.relative(process.cwd(), source)).replace(/\.ts$/, '.mjs');
    if (existsSync(bundle)) return [bundle];
  }
  return ['--import', 'tsx', source];
}
