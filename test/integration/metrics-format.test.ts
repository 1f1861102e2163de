// /metrics of a running Sentinel, as Prometheus tooling reads it: `promtool check metrics`, and the naming rules
// checked here too so that they hold where promtool is not installed.
import { spawn, spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { startTestApi, type TestApi } from '../support/sentinel-api.js';

/** Each metric family's type, from the `# TYPE` lines of a text exposition. */
function familyTypes(exposition: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const [, name, type] of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(name!, type!);
  return types;
}

async function promtoolCheck(exposition: string): Promise<{ code: number | null; said: string }> {
  const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let said = '';
  child.stdout.on('data', (chunk: Buffer) => (said += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (said += chunk.toString()));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  child.stdin.end(exposition);
  return { code: await exited, said };
}

const PROMTOOL = spawnSync('promtool', ['--version']).error === undefined;

describe('/metrics format', function () {
  this.timeout(120_000);
  let api: TestApi;
  let exposition: string;

  before(async () => {
    // Logins, users and a service account: the labelled series of commands, appends and reads exist by now.
    api = await startTestApi();
    const response = await fetch(api.url.replace(/\/api\/v1$/, '/metrics'));
    expect(response.status).to.equal(200);
    exposition = await response.text();
  });

  after(async () => {
    await api?.stop();
  });

  it('names no gauge with _total and every counter with it', () => {
    const types = familyTypes(exposition);
    expect(types.size).to.be.greaterThan(10);
    const wrong = [...types].filter(([name, type]) => (type === 'counter') !== name.endsWith('_total')).map(([name, type]) => `${name} (${type})`);
    expect(wrong).to.deep.equal([]);
  });

  it('keeps the active handle, request and resource counts, by type', () => {
    const types = familyTypes(exposition);
    for (const name of ['nodejs_active_handles', 'nodejs_active_resources']) expect(types.get(name), name).to.equal('gauge');
    expect(exposition).to.match(/^nodejs_active_handles\{type="[A-Za-z]+"\} \d+$/m);
  });

  it('passes promtool check metrics', async function () {
    if (!PROMTOOL) {
      console.log('      skipped: promtool is not on PATH (apt-get install -y prometheus)');
      return this.skip();
    }
    const { code, said } = await promtoolCheck(exposition);
    expect(said.trim(), said).to.equal('');
    expect(code).to.equal(0);
  });
});
