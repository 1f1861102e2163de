// The console in a real browser: Debian's Chromium against one Sentinel with the reactors and the simulated cluster.
// Signs in, watches a deployment change live without a reload, opens a refused plan and its explanation, and checks
// each page for console errors and serious accessibility violations. The live stream and the console's headers are
// checked over plain HTTP too.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { SIMULATED_CLUSTER_ID } from '../../app/reactors.js';
import { CONSOLE_CONTENT_SECURITY_POLICY } from '../../app/console/console-router.js';
import {
  chromiumPresent,
  launchChromium,
  pageErrors,
  readEventStream,
  screenshot,
  seriousAccessibilityViolations,
  SKIP_CHROMIUM_REASON,
} from '../support/console-browser.js';
import { ADMIN_PASSWORD, startTestApi, type TestApi } from '../support/sentinel-api.js';

const IMAGE = 'registry.local/console-test:1.0';

describe('console', function () {
  this.timeout(60_000);
  let api: TestApi;
  let origin: string;
  let namespace: string;

  before(async () => {
    api = await startTestApi(undefined, { SENTINEL_ROLE: 'api,projector,reactor', SENTINEL_CLUSTER_SIMULATOR: 'on' });
    origin = api.url.replace(/\/api\/v1$/, '');
    namespace = `console-${process.pid}`;
  });
  after(async () => {
    await api?.stop();
  });

  async function created(route: string, body: unknown): Promise<string> {
    const reply = await api.request<{ id: string }>('post', route, { as: 'admin', body });
    expect(reply.status, `${route}: ${JSON.stringify(reply.body)}`).to.be.oneOf([201, 202]);
    return reply.body.id;
  }

  const workload = (name: string) =>
    created('/workloads', { name, namespace, type: 'inference', image: IMAGE, resources: { cpu: '100m', memory: '128Mi' }, labels: { team: 'console' } });

  describe('served by Sentinel', () => {
    it('answers every page path with the shell under its own CSP, and the assets under hashed, immutable names', async () => {
      for (const pagePath of ['/', '/deployments', `/deployments/${randomUUID()}`, '/plans', '/decisions', '/audit', '/timeline', '/operations', '/login']) {
        const response = await fetch(origin + pagePath);
        expect(response.status, pagePath).to.equal(200);
        expect(response.headers.get('content-type'), pagePath).to.match(/^text\/html/);
        expect(response.headers.get('content-security-policy'), pagePath).to.equal(CONSOLE_CONTENT_SECURITY_POLICY);
        expect(response.headers.get('cache-control'), pagePath).to.equal('no-cache');
        expect(response.headers.get('x-frame-options')).to.equal('DENY');
        const html = await response.text();
        const assets = [...html.matchAll(/(?:src|href)="(\/assets\/console\.[0-9a-f]{16}\.(?:js|css))"/g)].map((match) => match[1]!);
        expect(assets, 'one script and one stylesheet').to.have.length(2);
        for (const asset of assets) {
          const served = await fetch(origin + asset);
          expect(served.status, asset).to.equal(200);
          expect(served.headers.get('cache-control'), asset).to.equal('public, max-age=31536000, immutable');
          expect(served.headers.get('content-type'), asset).to.match(asset.endsWith('.js') ? /^text\/javascript/ : /^text\/css/);
          await served.arrayBuffer();
        }
      }
      // An asset name with another hash is not this build's: the ordinary 404 problem.
      const stale = await fetch(`${origin}/assets/console.0000000000000000.js`);
      expect(stale.status).to.equal(404);
      expect(stale.headers.get('content-type')).to.match(/^application\/problem\+json/);
      // The API keeps its JSON policy.
      const apiAnswer = await fetch(`${api.url}/clusters`);
      expect(apiAnswer.headers.get('content-security-policy')).to.equal("default-src 'none';frame-ancestors 'none'");
    });
  });

  describe('GET /api/v1/events/stream', () => {
    const streamUrl = () => `${api.url}/events/stream`;

    it('refuses a caller without a token (401) or with a bad Last-Event-ID (400), naming what is wrong', async () => {
      const anonymous = await fetch(streamUrl());
      expect(anonymous.status).to.equal(401);
      expect(anonymous.headers.get('www-authenticate')).to.match(/^Bearer/);
      expect(((await anonymous.json()) as { type: string }).type).to.equal('urn:sentinel:problem:unauthenticated');

      const badToken = await fetch(streamUrl(), { headers: { authorization: 'Bearer not-a-token' } });
      expect(badToken.status).to.equal(401);
      expect(badToken.headers.get('www-authenticate')).to.match(/error="invalid_token"/);
      await badToken.arrayBuffer();

      const badResume = await fetch(streamUrl(), { headers: { authorization: `Bearer ${api.tokens.viewer}`, 'last-event-id': 'yesterday' } });
      expect(badResume.status).to.equal(400);
      const problem = (await badResume.json()) as { errors: { path: string }[] };
      expect(problem.errors[0]!.path).to.equal('Last-Event-ID');

      const tokenInUrl = await fetch(`${streamUrl()}?access_token=${api.tokens.viewer}`, { headers: { authorization: `Bearer ${api.tokens.viewer}` } });
      expect(tokenInUrl.status, 'no token in URLs: no query parameters at all').to.equal(400);
      await tokenInUrl.arrayBuffer();
    });

    it('sends each new event with its position as id, and resumes after Last-Event-ID', async () => {
      const headers = { authorization: `Bearer ${api.tokens.viewer}` };
      const name = `stream-${randomUUID().slice(0, 8)}`;
      let workloadId = '';
      // The workload is registered once the stream has answered, so after its start.
      const opened = await readEventStream(
        streamUrl(),
        headers,
        (events) => events.some((event) => JSON.parse(event.data).stream === `workload-${workloadId}`),
        async () => (workloadId = await workload(name)),
      );
      expect(opened.status).to.equal(200);
      expect(opened.headers.get('content-type')).to.match(/^text\/event-stream/);
      const registered = opened.events.find((event) => JSON.parse(event.data).stream === `workload-${workloadId}`);
      expect(registered, 'the workload’s event').to.not.equal(undefined);
      const data = JSON.parse(registered!.data) as { position: string; stream: string; type: string; recordedAt: string };
      expect(Object.keys(data).sort()).to.deep.equal(['position', 'recordedAt', 'stream', 'type']);
      expect(registered!.id).to.equal(data.position);
      expect(registered!.event).to.equal('appended');

      // Resuming from an event sends what came after it, and not it again: here the next workload's event.
      let nextId = '';
      const resumed = await readEventStream(
        streamUrl(),
        { ...headers, 'last-event-id': registered!.id! },
        (events) => events.some((event) => JSON.parse(event.data).stream === `workload-${nextId}`),
        async () => (nextId = await workload(`stream-${randomUUID().slice(0, 8)}`)),
      );
      const ids = resumed.events.map((event) => event.id!);
      expect(ids).to.not.include(registered!.id);
      expect(ids.every((id) => id > registered!.id!), 'only events after it, in log order').to.equal(true);
      expect(ids, 'in log order').to.deep.equal([...ids].sort());
    });
  });

  describe('in Chromium', function () {
    let browser: Browser;
    let context: BrowserContext;
    let page: Page;
    let errors: string[];

    before(async function () {
      if (!chromiumPresent()) {
        console.log(`      skipped: ${SKIP_CHROMIUM_REASON}`);
        return this.skip();
      }
      browser = await launchChromium();
      context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      page = await context.newPage();
      page.setDefaultTimeout(10_000);
      errors = pageErrors(page);
    });
    after(async () => {
      await browser?.close();
    });
    afterEach(async function () {
      if (!page) return;
      // What the page showed when a test failed, beside the other screenshots.
      if (this.currentTest?.state === 'failed') await screenshot(page, `failed-${this.currentTest.title.replace(/[^a-z0-9]+/gi, '-')}`);
      expect(errors, 'console errors and uncaught exceptions').to.deep.equal([]);
    });

    /** The page's data has loaded (the first time, or again after a live event). */
    const loaded = () => page.waitForSelector('#data[aria-busy="false"]');
    const accessible = async (name: string) => {
      await screenshot(page, name);
      expect(await seriousAccessibilityViolations(page), `${name}: serious or critical accessibility violations`).to.deep.equal([]);
    };
    const follow = async (name: string) => {
      await page.getByRole('link', { name, exact: true }).first().click();
      await loaded();
    };

    /** The replay dialog has its answer: the decision replayed to the same verdict, and says it matches. */
    const replayed = async (verdict: string) => {
      const dialog = page.getByRole('dialog', { name: 'Replay of a policy decision' });
      await dialog.locator('#replay-matches').waitFor();
      expect(await dialog.locator('#replay-matches').textContent()).to.match(/^✓ Matches/);
      expect(await dialog.locator('#replay-recorded').textContent()).to.equal(verdict);
      expect(await dialog.locator('#replay-replayed').textContent()).to.equal(verdict);
      const outcomes = await dialog.locator('table.replay-results tbody tr').evaluateAll((rows) =>
        rows.map((row) => [...(row as unknown as { cells: { textContent: string }[] }).cells].slice(2, 4).map((cell) => cell.textContent)),
      );
      expect(outcomes.length, 'each policy’s result, recorded and replayed').to.be.greaterThan(0);
      for (const [recorded, replay] of outcomes) expect(replay).to.equal(recorded);
    };

    it('signs in on the login page and shows the fleet', async () => {
      await page.goto(`${origin}/`);
      await page.waitForURL(/\/login\?next=%2F$/);
      await accessible('login');
      await page.getByLabel('Username').fill('admin');
      await page.getByLabel('Password').fill('not the password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForSelector('#login-error:not(:empty)');
      // A refused login is answered 401, which the browser reports as a failed resource load.
      errors.splice(0, errors.length, ...errors.filter((error) => !/status of 401/.test(error)));

      await page.getByLabel('Password').fill(ADMIN_PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(`${origin}/`);
      await loaded();
      expect(await page.locator('h1').textContent()).to.equal('Fleet');
      await page.waitForSelector('#live:text("Live")');
      expect(await page.locator('table').first().textContent()).to.contain('Team');
      await accessible('fleet');
    });

    /** The deployment the live test makes, which the refused plan then asks to scale beyond a quota. */
    let deploymentId: string;

    it('shows a new deployment appear and change live, without a reload', async () => {
      const workloadId = await workload(`live-${randomUUID().slice(0, 8)}`);
      await follow('Deployments');
      await accessible('deployments');
      // A reload would lose this.
      await page.evaluate(() => ((globalThis as unknown as { unreloaded: boolean }).unreloaded = true));

      deploymentId = await created('/deployments', { workloadId, clusterId: SIMULATED_CLUSTER_ID, replicas: 1 });
      const row = page.locator(`#deployments a[href="/deployments/${deploymentId}"]`);
      await row.waitFor();
      await row.click();
      await page.waitForSelector('#deployment-replicas:text("1 ready of 1")');
      expect(await page.locator('#deployment-status').textContent()).to.equal('Available');

      await api.request('post', `/deployments/${deploymentId}/scale`, { as: 'operator', body: { replicas: 2 } });
      await page.waitForSelector('#deployment-replicas:text("2 ready of 2")');
      const timeline = await page.locator('#timeline tbody').textContent();
      expect(timeline).to.contain('DeploymentScaled');
      expect(await page.evaluate(() => (globalThis as unknown as { unreloaded?: boolean }).unreloaded)).to.equal(true);
      await accessible('deployment');
    });

    it('opens a refused plan, its violation and the explanation of its decision', async () => {
      await created('/policies', { name: `two replicas in ${namespace}`, type: 'quota', mode: 'enforce', selector: { namespaces: [namespace] }, parameters: { limits: { replicas: 2 } } });
      await follow('Action plans');
      const refused = await api.request<{ recordedIn?: { id: string } }>('post', '/action-plans', {
        as: 'operator',
        body: { reason: 'more than the quota', actions: [{ kind: 'scale', deploymentId, replicas: 4 }], ttlSeconds: 600 },
      });
      expect(refused.status, JSON.stringify(refused.body)).to.equal(422);
      const planId = refused.body.recordedIn!.id;

      const row = page.locator(`#plans a[href="/plans/${planId}"]`);
      await row.waitFor();
      await accessible('plans');
      await row.click();
      await page.waitForSelector('#plan-status:has-text("Rejected")');
      expect(await page.locator('#violations').textContent()).to.contain('Why it was refused');
      const decision = await page.locator('section.decision').first().textContent();
      expect(decision).to.contain('deny').and.to.contain(`two replicas in ${namespace}`);
      await accessible('plan');

      // Replayed with the policy set and inputs it recorded, the decision comes out the same.
      await page.locator('section.decision').first().getByRole('button', { name: 'Replay' }).click();
      await replayed('deny');
      await accessible('replay');
      await page.getByRole('dialog').getByRole('button', { name: 'Close' }).click();
      await page.getByRole('dialog').waitFor({ state: 'hidden' });

      await follow('Explain this decision');
      expect(await page.locator('h1').textContent()).to.equal('Causal timeline');
      const tree = await page.locator('#data').textContent();
      expect(tree).to.contain('PolicyEvaluated').and.to.contain('ActionPlanRejected');
      await accessible('timeline');
    });

    it('filters policy decisions by verdict, and shows the audit trail with its verification', async () => {
      await follow('Policy decisions');
      await page.getByLabel('Verdict').selectOption('deny');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.waitForURL(/\/decisions\?verdict=deny$/);
      await loaded();
      const verdicts = await page.locator('#decisions tbody tr td:nth-child(3)').allTextContents();
      expect(verdicts.length).to.be.greaterThan(0);
      expect([...new Set(verdicts)]).to.deep.equal(['deny']);
      await accessible('decisions');

      // Replay from the list: the newest refusal, which is the plan's.
      await page.locator('#decisions tbody tr').first().getByRole('button', { name: 'Replay' }).click();
      await replayed('deny');
      await page.keyboard.press('Escape');
      await page.getByRole('dialog').waitFor({ state: 'hidden' });

      await follow('Audit trail');
      await page.getByRole('button', { name: 'Verify the hash chain' }).click();
      await page.waitForSelector('#audit-verify:text("Hash chain verified")');
      expect(await page.locator('#audit tbody tr').count()).to.be.greaterThan(0);
      await accessible('audit');
    });

    it('shows each projection and reactor with its lag, and the parked events', async () => {
      await follow('Projections and reactors');
      const projections = await page.locator('#projections tbody tr td:first-child').allTextContents();
      expect(projections).to.include.members(['deployments', 'policy-decisions', 'audit']);
      const reactors = await page.locator('#reactors tbody tr td:first-child').allTextContents();
      expect(reactors).to.include.members(['fleet', 'plans', `cluster-${SIMULATED_CLUSTER_ID}`]);
      await page.locator('#parked-heading').waitFor();
      expect(await page.locator('#data').textContent()).to.match(/\d+ parked/);
      await accessible('operations');
    });

    /** The query API's paths the page asks for (with their query strings) while `act` runs and until `shown` holds. */
    async function readsDuring(act: () => Promise<unknown>, shown: () => Promise<unknown>): Promise<string[]> {
      const reads: string[] = [];
      const seen = (request: { url(): string }) => {
        const url = new URL(request.url());
        if (url.pathname.startsWith('/api/v1/') && url.pathname !== '/api/v1/events/stream') reads.push(url.pathname + url.search);
      };
      page.on('request', seen);
      try {
        await act();
        await shown();
      } finally {
        page.off('request', seen);
      }
      return reads;
    }

    it('re-reads only what a live event touched: the scaled deployment on the list, the new decision on the decisions page', async () => {
      await follow('Deployments');
      const row = page.locator(`#deployments tr:has(a[href="/deployments/${deploymentId}"])`);
      await row.waitFor();
      const scale = (replicas: number) => api.request('post', `/deployments/${deploymentId}/scale`, { as: 'operator', body: { replicas } });

      const onList = await readsDuring(
        () => scale(1),
        () => page.waitForFunction((id: string) => {
          const cells = (globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } }).document
            .querySelector(`#deployments tr:has(a[href="/deployments/${id}"]) td:nth-child(3)`);
          return cells?.textContent === '1 / 1';
        }, deploymentId),
      );
      expect(onList.length, 'something was read').to.be.greaterThan(0);
      for (const read of onList) expect(read, 'the scaled deployment alone, not the list').to.match(new RegExp(`^/api/v1/deployments/${deploymentId}\\?after=`));

      await follow('Policy decisions');
      const newestOf = () => page.locator('#decisions tbody tr').first().locator('td').nth(3).textContent();
      const before = await page.locator('#decisions tbody tr').count();
      const onDecisions = await readsDuring(
        () => scale(2),
        () => page.waitForFunction((count: number) =>
          (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll('#decisions tbody tr').length > count, before),
      );
      expect(await newestOf()).to.equal(`deployment-${deploymentId}`);
      expect(onDecisions.length, 'something was read').to.be.greaterThan(0);
      for (const read of onDecisions) {
        const [path, query] = read.split('?');
        expect(path).to.equal('/api/v1/policy-decisions');
        expect(Number(new URLSearchParams(query).get('limit')), 'the newest decisions, as many as events came, not the whole page').to.be.lessThan(10);
      }
      await accessible('decisions-live');
    });

    it('shows the fleet’s cost by cluster and by GPU SKU', async () => {
      const cluster = await api.request<{ name: string }>('get', `/clusters/${SIMULATED_CLUSTER_ID}`, { as: 'viewer' });
      await follow('Fleet');
      await page.locator('#cost-by-cluster').waitFor();
      expect(await page.locator('#cost-by-cluster tbody td:first-child').allTextContents()).to.include(cluster.body.name);
      expect(await page.locator('#cost-by-sku caption').textContent()).to.contain('GPU SKU');
      await accessible('fleet-cost');
    });
  });
});
