// `npm test`'s global set-up: the entry points that tests run in child processes (Sentinel, its CLI, the helpers
// killed mid-write), bundled once from the working tree for plain node to start. Through tsx's loader (resolving,
// compiling, source maps) a child used two to three times the CPU: 1.9–2.2 s against 0.6–0.8 s for
// `sentinel --version`, 5.8–7.3 s against 2.4–3.0 s for a CLI verb that opens the database. `test/support/entry-points.ts` starts a
// bundle where this made one, and the source through tsx otherwise (`npm run test:file`). The bundles are split at
// dynamic imports, so what a module loads only when asked (the composition root, for the CLI) still loads only then.
//
// Packages stay outside the bundles, loaded from node_modules as the source loads them; so the bundles are written
// under node_modules/.cache, from where node finds them. Each source file's `import.meta.url` is its own path, as
// under tsx, so that what a module finds beside itself (package.json, protos, the console's assets) is the same.
const { mkdtemp, readFile, rm, mkdir } = require('node:fs/promises');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

const ROOT = path.resolve(__dirname, '../..');
const ENTRIES = ['app/main.ts', 'app/cli.ts', 'test/support/append-until-killed.ts', 'test/support/timers-until-killed.ts', 'test/support/kafka-publish-until-killed.ts'];
const VARIABLE = 'SENTINEL_TEST_BUNDLES';

/** Each module's `import.meta.url` as the URL of its source file. */
const sourceUrls = {
  name: 'source-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const source = await readFile(args.path, 'utf8');
      return { contents: source.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)), loader: 'ts' };
    });
  },
};

async function mochaGlobalSetup() {
  const esbuild = require('esbuild');
  const parent = path.join(ROOT, 'node_modules', '.cache');
  await mkdir(parent, { recursive: true });
  const outdir = await mkdtemp(path.join(parent, 'sentinel-test-bundles-'));
  await esbuild.build({
    entryPoints: ENTRIES.map((entry) => path.join(ROOT, entry)),
    outbase: ROOT,
    outdir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    packages: 'external',
    splitting: true,
    logLevel: 'warning',
    plugins: [sourceUrls],
  });
  // The workers are forked after this, with this environment.
  process.env[VARIABLE] = outdir;
  this.bundles = outdir;
}

async function mochaGlobalTeardown() {
  if (this.bundles) await rm(this.bundles, { recursive: true, force: true });
}

module.exports = { mochaGlobalSetup, mochaGlobalTeardown, ENTRIES };
