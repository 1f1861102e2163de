// Sentinel's console: renders each page from the query API with the signed-in user's token, and re-reads what a
// page shows when the live event stream says something it shows has changed. Every value from the API is placed
// with text nodes, never parsed as markup.
/* global document, window, sessionStorage, fetch, history, location, URL, URLSearchParams, AbortController, setTimeout, clearTimeout, console */

const API = '/api/v1';
const TOKEN = 'sentinel.accessToken';
const REFRESH = 'sentinel.refreshToken';
const RECONNECT_MS = 1000;
/** Least time between the starts of two live re-reads of a page. */
const REFRESH_GAP_MS = 250;

// ---- DOM -------------------------------------------------------------------------------------------------------

/** An element with attributes and children; strings become text nodes, so data never becomes markup. */
function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(parent, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.append(child instanceof window.Node ? child : document.createTextNode(String(child)));
  }
}

const link = (href, ...text) => h('a', { href }, ...text);
const code = (text) => h('code', {}, text ?? '—');
const shortId = (id) => (typeof id === 'string' && id.length > 12 ? `${id.slice(0, 8)}…` : (id ?? '—'));
const time = (iso) => (iso ? h('time', { datetime: iso }, new Date(iso).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z')) : '—');
const badge = (status) => h('span', { class: `badge badge-${String(status ?? 'unknown').toLowerCase().replace(/[^a-z0-9]+/g, '-')}` }, status ?? '—');
const money = (usd) => (typeof usd === 'number' ? `$${usd.toFixed(2)}/h` : '—');
const number = (value, digits = 0) => (typeof value === 'number' ? value.toFixed(digits) : '—');

/** A table with a caption, column headers and one row per item; an empty list says so. */
function table(caption, columns, items, rowOf, attributes = {}) {
  const body = items.map((item) => h('tr', rowAttributes(item), ...rowOf(item).map((cell) => h('td', {}, cell))));
  return h(
    'table',
    attributes,
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, ...columns.map((column) => h('th', { scope: 'col' }, column)))),
    h('tbody', {}, body.length > 0 ? body : h('tr', {}, h('td', { colspan: columns.length, class: 'empty' }, 'Nothing here yet.'))),
  );
}
const rowAttributes = (item) => (item && typeof item === 'object' && item.__current ? { 'aria-current': 'true', class: 'current' } : {});

/** Where an event is shown: the audit trail of its stream, that event marked. */
const eventLink = (stream, position, label = 'event') =>
  stream && position ? link(`/audit?${new URLSearchParams({ stream, at: position })}`, label) : '—';
const explainLink = (correlationId, label = 'explain') => (correlationId ? link(`/timeline?${new URLSearchParams({ correlationId })}`, label) : '—');

// ---- the API ---------------------------------------------------------------------------------------------------

class ApiProblem extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? problem?.title ?? `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}
class SignedOut extends Error {}

const token = () => sessionStorage.getItem(TOKEN);

function signOut() {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(REFRESH);
  live.stop();
}

/** Trades the single-use refresh token for a new pair; false when there is none or it was refused. */
let refreshing;
function refreshTokens() {
  refreshing ??= (async () => {
    const refreshToken = sessionStorage.getItem(REFRESH);
    if (!refreshToken) return false;
    const response = await fetch(`${API}/auth/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken }) });
    if (!response.ok) return false;
    const pair = await response.json();
    sessionStorage.setItem(TOKEN, pair.accessToken);
    sessionStorage.setItem(REFRESH, pair.refreshToken);
    return true;
  })().finally(() => {
    refreshing = undefined;
  });
  return refreshing;
}

/** GET a query route as the signed-in user; `after` (a live event's position) waits until the read side shows it. */
async function get(path, query = {}, { after, optional = false } = {}) {
  const params = new URLSearchParams(Object.entries(query).filter(([, value]) => value !== undefined && value !== ''));
  if (after) params.set('after', after);
  const url = `${API}${path}${params.size > 0 ? `?${params}` : ''}`;
  for (let attempt = 0; ; attempt += 1) {
    if (!token()) throw new SignedOut();
    const response = await fetch(url, { headers: { authorization: `Bearer ${token()}`, accept: 'application/json' } });
    if (response.ok) return response.json();
    const problem = await response.json().catch(() => undefined);
    if (response.status === 401 && attempt === 0 && (await refreshTokens())) continue;
    if (response.status === 401) {
      signOut();
      throw new SignedOut();
    }
    // The read side has not reached the event yet: read again shortly.
    if (response.status === 503 && attempt < 3) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      continue;
    }
    if (response.status === 404 && optional) return undefined;
    throw new ApiProblem(response.status, problem);
  }
}

// ---- live updates ----------------------------------------------------------------------------------------------

/**
 * Follows `GET /events/stream` with fetch, so the token goes in the Authorization header rather than the URL, and
 * resumes after a dropped connection from the last event seen (Last-Event-ID).
 */
const live = {
  controller: undefined,
  lastId: undefined,
  listeners: new Set(),
  running: false,
  generation: 0,

  start() {
    if (this.running) return;
    this.running = true;
    void this.connect();
  },
  stop() {
    this.running = false;
    this.controller?.abort();
    this.lastId = undefined;
    this.show('');
  },
  show(text) {
    const status = document.getElementById('live');
    if (status) status.textContent = text;
  },
  /** Resolves once the stream has answered (or failed), so a page reads the API only after the stream has its start. */
  async connect() {
    let opened;
    this.ready = new Promise((resolve) => (opened = resolve));
    // A sign-out and sign-in while this loop waits to reconnect starts another loop; this one then ends.
    const generation = ++this.generation;
    const mine = () => this.running && generation === this.generation;
    while (mine()) {
      this.controller = new AbortController();
      try {
        const headers = { authorization: `Bearer ${token()}`, accept: 'text/event-stream' };
        if (this.lastId) headers['last-event-id'] = this.lastId;
        const response = await fetch(`${API}/events/stream`, { headers, signal: this.controller.signal });
        if (response.status === 401) {
          if (await refreshTokens()) continue;
          // The login is over (expired, ended or disabled): sign in again.
          signOut();
          navigate(`/login?${new URLSearchParams({ next: location.pathname + location.search })}`);
          return;
        }
        if (!response.ok || !response.body) throw new Error(`the live stream answered ${response.status}`);
        this.show('Live');
        opened();
        await this.read(response.body);
      } catch {
        // Aborted on sign-out, or the connection dropped: reconnect below while still running.
      }
      opened();
      if (!mine()) return;
      this.show('Reconnecting…');
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  },
  async read(body) {
    const reader = body.pipeThrough(new window.TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(buffer.slice(end).match(/^\r?\n\r?\n/)[0].length + end);
        this.dispatch(block);
      }
    }
  },
  dispatch(block) {
    let id;
    let type = 'message';
    let data = '';
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') id = value;
      else if (field === 'event') type = value;
      else if (field === 'data') data += data ? `\n${value}` : value;
    }
    // The server ends the stream after this frame (the token expired or was revoked); the reconnect refreshes it.
    if (!data || type !== 'appended') return;
    if (id) this.lastId = id;
    const event = JSON.parse(data);
    for (const listener of this.listeners) listener(event);
  },
};

// ---- live lists ------------------------------------------------------------------------------------------------

/** Rows a list page shows: the newest. */
const LIST_LIMIT = 200;
/** Most aggregates a live update re-reads one by one; when more changed at once, the list is read again whole. */
const ONE_BY_ONE = 3;

/**
 * A list of aggregates newest first (by `createdAt`), brought up to date with the events since it was read: each
 * aggregate they touch is read alone and its row replaced, added or dropped. The whole list is read the first time,
 * when many changed at once, and when a row leaves a full list (the next one in would be unknown).
 */
async function rowsTouched(items, events, category, { list, one, shows }) {
  const ids = events && [...new Set(events.filter((event) => event.stream.startsWith(category)).map((event) => event.stream.slice(category.length)))];
  if (!items || !ids || ids.length > ONE_BY_ONE) return (await list()).items;
  const fresh = await Promise.all(ids.map(one));
  const full = items.length >= LIST_LIMIT;
  const oldest = items.at(-1);
  const rows = items.filter((row) => !ids.includes(row.id));
  for (const [i, row] of fresh.entries()) {
    const shown = items.some((item) => item.id === ids[i]);
    if (row && shows(row) && (!full || shown || row.createdAt >= oldest.createdAt)) rows.push(row);
    else if (shown && full) return (await list()).items;
  }
  // Stable: rows created in the same millisecond keep the order the list gave them.
  return rows.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0)).slice(0, LIST_LIMIT);
}

/**
 * Entries of the log newest first (decisions, the audit trail), with the ones the events added on top: no more
 * than one new entry per event, so the newest `events.length` entries under the same filters hold every new one.
 */
async function entriesAdded(items, events, read) {
  if (!items || !events || events.length >= LIST_LIMIT) return (await read(LIST_LIMIT)).items;
  const newest = items[0]?.position ?? '';
  const added = (await read(events.length)).items.filter((entry) => entry.position > newest);
  return [...added, ...items].slice(0, LIST_LIMIT);
}

// ---- pages -----------------------------------------------------------------------------------------------------

const categoryOf = (stream) => stream.slice(0, stream.indexOf('-') + 1);

/**
 * Each page: a heading, controls that stay while the data below them is re-read, the data itself (`view`), and
 * which events make it stale (`watches`).
 */
const PAGES = [
  { path: /^\/$/, page: fleetPage },
  { path: /^\/login$/, page: loginPage },
  { path: /^\/deployments$/, page: deploymentsPage },
  { path: /^\/deployments\/([^/]+)$/, page: deploymentPage },
  { path: /^\/plans$/, page: plansPage },
  { path: /^\/plans\/([^/]+)$/, page: planPage },
  { path: /^\/decisions$/, page: decisionsPage },
  { path: /^\/timeline$/, page: timelinePage },
  { path: /^\/audit$/, page: auditPage },
  { path: /^\/operations$/, page: operationsPage },
];

function fleetPage() {
  // What each part shows, and the categories of the events that change it.
  const reads = {
    clusters: { categories: ['cluster-'], read: (after) => get('/clusters', { limit: 500 }, { after }) },
    gpus: { categories: ['node-'], read: () => get('/fleet/gpus') },
    cost: { categories: ['cluster-', 'deployment-', 'quota-'], read: (after) => get('/fleet/cost', {}, { after }) },
    nodes: { categories: ['node-'], read: (after) => get('/nodes', { limit: 500 }, { after }) },
  };
  const shown = {};
  return {
    title: 'Fleet',
    watches: (event) => Object.values(reads).some(({ categories }) => categories.includes(categoryOf(event.stream))),
    async view(after, events) {
      const touched = Object.entries(reads).filter(
        ([part, { categories }]) => !events || shown[part] === undefined || events.some((event) => categories.includes(categoryOf(event.stream))),
      );
      const fresh = await Promise.all(touched.map(([, { read }]) => read(after)));
      touched.forEach(([part], i) => (shown[part] = fresh[i]));
      const { clusters, gpus, cost, nodes } = shown;
      const names = new Map(clusters.items.map((c) => [c.id, c.name]));
      const clusterName = (id) => names.get(id) ?? shortId(id);
      return [
        h('section', { 'aria-labelledby': 'cost-heading' },
          h('h2', { id: 'cost-heading' }, 'Cost'),
          h('p', { class: 'figure' }, h('span', { id: 'fleet-cost' }, money(cost.hourlyUsd)), ` across ${cost.deployments} placed deployments`),
          table('Cost per hour by team', ['Team', 'GPUs', 'Cost'], cost.byTeam, (t) => [t.team, t.gpus, money(t.hourlyUsd)], { id: 'cost-by-team' }),
          table('Cost per hour by cluster', ['Cluster', 'GPUs', 'Cost'], cost.byCluster, (c) => [clusterName(c.clusterId), c.gpus, money(c.hourlyUsd)], { id: 'cost-by-cluster' }),
          table('Cost per hour by GPU SKU (whole cost of the deployments holding them)', ['SKU', 'GPUs', 'Cost'], cost.byGpuSku, (s) => [s.sku, s.gpus, money(s.hourlyUsd)], { id: 'cost-by-sku' }),
        ),
        h('section', { 'aria-labelledby': 'clusters-heading' },
          h('h2', { id: 'clusters-heading' }, 'Clusters'),
          table('Clusters and whether Sentinel reaches them', ['Name', 'Region', 'Status', 'Connection', 'Since', 'GPU SKUs', 'Events'], clusters.items, (c) => [
            c.name, c.region, badge(c.status), [badge(c.connection?.state), c.connection?.cause ? ` ${c.connection.cause}` : ''],
            time(c.connection?.since), (c.gpuSkus ?? []).join(', ') || '—', link(`/audit?${new URLSearchParams({ stream: `cluster-${c.id}` })}`, 'events'),
          ]),
        ),
        h('section', { 'aria-labelledby': 'gpus-heading' },
          h('h2', { id: 'gpus-heading' }, 'GPUs'),
          h('p', {}, `${gpus.total.gpus} GPUs reporting, ${gpus.total.allocated} allocated, ${number(gpus.total.utilisationPct, 1)}% utilised (readings of the last ${gpus.windowSeconds} s)`),
          table('GPUs by SKU', ['SKU', 'GPUs', 'Allocated', 'Utilisation %', 'Memory used (MiB)', 'Hottest (°C)', 'Power (W)'], gpus.bySku, (s) => [
            s.sku, s.gpus, s.allocated, number(s.utilisationPct, 1), `${number(s.memoryUsedMiB)} / ${number(s.memoryTotalMiB)}`, number(s.temperatureMaxC), number(s.powerW),
          ]),
          table('Nodes and their health', ['Node', 'Cluster', 'Status', 'Unfit because', 'Events'], nodes.items, (n) => [
            n.name, shortId(n.clusterId), badge(n.status), (n.unfit ?? []).map((u) => u.reason).join('; ') || '—',
            link(`/audit?${new URLSearchParams({ stream: `node-${n.id}` })}`, 'events'),
          ]),
        ),
      ];
    },
  };
}

function loginPage() {
  return {
    title: 'Sign in',
    public: true,
    controls() {
      const error = h('p', { class: 'error', role: 'alert', id: 'login-error' });
      const form = h('form', { class: 'login', id: 'login' },
        h('label', { for: 'username' }, 'Username'),
        h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true }),
        h('label', { for: 'password' }, 'Password'),
        h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
        h('button', { type: 'submit' }, 'Sign in'),
        error,
      );
      form.addEventListener('submit', async (submit) => {
        submit.preventDefault();
        error.textContent = '';
        const body = { username: form.elements.username.value, password: form.elements.password.value };
        const response = await fetch(`${API}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        const answer = await response.json().catch(() => ({}));
        if (!response.ok) {
          error.textContent = answer.detail ?? `Signing in failed (${response.status})`;
          return;
        }
        sessionStorage.setItem(TOKEN, answer.accessToken);
        sessionStorage.setItem(REFRESH, answer.refreshToken);
        const next = new URLSearchParams(location.search).get('next');
        navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/');
      });
      return form;
    },
  };
}

function deploymentsPage(_match, query) {
  let items;
  return {
    title: 'Deployments',
    watches: (event) => event.stream.startsWith('deployment-'),
    controls: () => filterForm([{ name: 'status', label: 'Status', options: ['', 'Pending', 'Applying', 'Progressing', 'Available', 'Degraded', 'Failed', 'RolledBack', 'Deleted'] }], query),
    async view(after, events) {
      const status = query.get('status') ?? undefined;
      items = await rowsTouched(items, events, 'deployment-', {
        list: () => get('/deployments', { limit: LIST_LIMIT, order: 'desc', status }, { after }),
        one: (id) => get(`/deployments/${encodeURIComponent(id)}`, {}, { after, optional: true }),
        shows: (d) => !status || d.status === status,
      });
      return table('Deployments, newest first', ['Deployment', 'Status', 'Ready / desired', 'Strategy', 'Revision', 'Cluster', 'Updated', 'Caused by'], items, (d) => [
        link(`/deployments/${encodeURIComponent(d.id)}`, shortId(d.id)), badge(d.status), `${d.readyReplicas ?? 0} / ${d.replicas}`, d.strategy?.type ?? '—',
        d.currentRevision, shortId(d.clusterId), time(d.updatedAt), link(`/audit?${new URLSearchParams({ stream: `deployment-${d.id}` })}`, 'events'),
      ], { id: 'deployments' });
    },
  };
}

function deploymentPage([, id]) {
  const stream = `deployment-${id}`;
  // This deployment's rollouts, one stream per revision (`rollout-<id>.<revision>`).
  const rollouts = `rollout-${id}.`;
  const path = `/deployments/${encodeURIComponent(id)}`;
  let deployment;
  let history;
  return {
    title: `Deployment ${shortId(id)}`,
    watches: (event) => event.stream === stream || event.stream.startsWith(rollouts),
    async view(after, events) {
      // A rollout's event changes the rollout alone; the deployment's own events change its facts and history.
      const own = !events || deployment === undefined || events.some((event) => event.stream === stream);
      if (own) [deployment, history] = await Promise.all([get(path, {}, { after }), get(`${path}/history`, {}, { after })]);
      const progressive = deployment.strategy && deployment.strategy.type !== 'rolling';
      const rollout = progressive ? await get(`${path}/rollout`, {}, { optional: true }) : undefined;
      return [
        h('dl', { class: 'facts' },
          h('dt', {}, 'Status'), h('dd', { id: 'deployment-status' }, badge(deployment.status)),
          h('dt', {}, 'Replicas'), h('dd', { id: 'deployment-replicas' }, `${deployment.readyReplicas ?? 0} ready of ${deployment.replicas}`),
          h('dt', {}, 'Strategy'), h('dd', {}, deployment.strategy?.type ?? '—'),
          h('dt', {}, 'Revision'), h('dd', {}, String(deployment.currentRevision)),
          h('dt', {}, 'Workload'), h('dd', {}, code(deployment.workloadId)),
          h('dt', {}, 'Cluster'), h('dd', {}, code(deployment.clusterId)),
          deployment.waitingFor ? [h('dt', {}, 'Waiting for'), h('dd', {}, deployment.waitingFor)] : null,
          deployment.lastCause ? [h('dt', {}, 'Last cause'), h('dd', {}, deployment.lastCause)] : null,
        ),
        rollout ? rolloutSection(rollout) : null,
        h('h2', {}, 'Revisions'),
        table('Every revision of this deployment', ['Revision', 'Workload revision', 'Strategy', 'Origin', 'Reason', 'Recorded', 'Became available'], history.revisions, (r) => [
          r.revision, r.workloadRevision, r.strategy?.type ?? '—', r.origin ?? '—', r.reason ?? '—', time(r.recordedAt), r.becameAvailable ? time(r.availableAt) : 'no',
        ]),
        h('h2', {}, 'Timeline'),
        table('What happened to this deployment, in order', ['When', 'Event', 'Status', 'Revision', 'Caused by'], history.timeline, (t) => [
          time(t.at), t.type, badge(t.status), t.revision, eventLink(stream, t.position),
        ], { id: 'timeline' }),
      ];
    },
  };
}

function rolloutSection(rollout) {
  return h('section', { 'aria-labelledby': 'rollout-heading' },
    h('h2', { id: 'rollout-heading' }, `Rollout of revision ${rollout.revision}: `, badge(rollout.status)),
    h('p', {}, `Step ${rollout.step.current} of ${rollout.step.of}; canary weight ${rollout.weight.canary}%.`, rollout.waitingFor ? ` Waiting for ${rollout.waitingFor}.` : ''),
    h('ol', { class: 'steps' }, ...rollout.steps.map((step) => h('li', { class: `step-${step.state}`, 'aria-current': step.state === 'current' ? 'step' : undefined }, `${step.step} (${step.state})`))),
    table('Analysis runs and their measurements', ['Step', 'Template', 'Verdict', 'Measurements'], rollout.analysisRuns, (run) => [
      run.step, run.template ?? '—', badge(run.verdict),
      h('ul', {}, ...run.measurements.map((m) => h('li', {}, `${m.metric}: ${m.outcome} (${JSON.stringify(m.value)}) ${m.message}`))),
    ]),
  );
}

function plansPage(_match, query) {
  let items;
  return {
    title: 'Action plans',
    watches: (event) => event.stream.startsWith('plan-'),
    controls: () => filterForm([
      { name: 'status', label: 'Status', options: ['', 'Pending', 'Validating', 'Approved', 'Rejected', 'Executing', 'Completed', 'Failed', 'RollingBack', 'RolledBack', 'Expired', 'Cancelled'] },
      { name: 'source', label: 'Source', options: ['', 'user', 'inframind', 'sentinel'] },
    ], query),
    async view(after, events) {
      const status = query.get('status') ?? undefined;
      const source = query.get('source') ?? undefined;
      items = await rowsTouched(items, events, 'plan-', {
        list: () => get('/action-plans', { limit: LIST_LIMIT, order: 'desc', status, source }, { after }),
        one: (id) => get(`/action-plans/${encodeURIComponent(id)}`, {}, { after, optional: true }),
        shows: (p) => (!status || p.status === status) && (!source || p.source === source),
      });
      return table('Action plans, newest first', ['Plan', 'Status', 'Source', 'Reason', 'Actions', 'Violations', 'Submitted', 'Caused by'], items, (p) => [
        link(`/plans/${encodeURIComponent(p.id)}`, shortId(p.id)), badge(p.status), p.source, p.reason ?? '—', p.actions.length,
        (p.violations ?? []).length, time(p.submittedAt), link(`/audit?${new URLSearchParams({ stream: `plan-${p.id}` })}`, 'events'),
      ], { id: 'plans' });
    },
  };
}

function planPage([, id]) {
  const stream = `plan-${id}`;
  return {
    title: `Action plan ${shortId(id)}`,
    watches: (event) => event.stream === stream,
    async view(after) {
      const [plan, decisions] = await Promise.all([get(`/action-plans/${encodeURIComponent(id)}`, {}, { after }), get('/policy-decisions', { stream, limit: 100 }, { after })]);
      return [
        h('dl', { class: 'facts' },
          h('dt', {}, 'Status'), h('dd', { id: 'plan-status' }, badge(plan.status)),
          h('dt', {}, 'Source'), h('dd', {}, plan.source),
          h('dt', {}, 'Reason'), h('dd', {}, plan.reason ?? '—'),
          h('dt', {}, 'Submitted'), h('dd', {}, time(plan.submittedAt)),
          plan.cause ? [h('dt', {}, 'Cause'), h('dd', {}, typeof plan.cause === 'string' ? plan.cause : JSON.stringify(plan.cause))] : null,
        ),
        (plan.violations ?? []).length > 0
          ? h('section', { 'aria-labelledby': 'violations-heading', id: 'violations' },
              h('h2', { id: 'violations-heading' }, 'Why it was refused'),
              h('ul', {}, ...plan.violations.map((v) => h('li', {}, typeof v === 'string' ? v : [v.path ? h('strong', {}, `${v.path}: `) : null, v.message ?? JSON.stringify(v)]))),
            )
          : null,
        h('h2', {}, 'Actions'),
        table('Each action and where it stands', ['#', 'Kind', 'Target', 'Status', 'Detail', 'Error'], plan.actions, (a) => [
          a.index, a.kind, code(typeof a.target === 'string' ? a.target : JSON.stringify(a.target)), badge(a.status), a.detail ?? '—', a.error ?? '—',
        ]),
        h('h2', {}, 'Decisions'),
        ...decisions.items.map(decisionSection),
      ];
    },
  };
}

/** One policy decision: its verdict and each rule's result for each change it judged. */
function decisionSection(decision) {
  return h('section', { class: 'decision' },
    h('h3', {}, `${decision.command}: `, badge(decision.verdict), ' ', time(decision.recordedAt)),
    h('p', {}, `Policy set revision ${decision.policySetRevision}. `, explainLink(decision.correlationId, 'Explain this decision'), ' · ', eventLink(decision.stream, decision.position, 'its event'), ' ',
      replayButton(decision)),
    ...decision.evaluations.map((evaluation) =>
      table(`${evaluation.action} ${evaluation.target?.kind ?? ''} ${shortId(evaluation.target?.id)}: ${evaluation.verdict}`, ['Policy', 'Type', 'Mode', 'Outcome', 'Message'], evaluation.results ?? [], (r) => [
        r.name ?? shortId(r.policyId), r.type, r.mode, badge(r.outcome), r.message ?? '—',
      ]),
    ),
  );
}

function decisionsPage(_match, query) {
  let items;
  return {
    title: 'Policy decisions',
    watches: (event) => event.type === 'PolicyEvaluated',
    controls: () => filterForm([{ name: 'verdict', label: 'Verdict', options: ['', 'allow', 'deny'] }], query),
    async view(after, events) {
      const verdict = query.get('verdict') ?? undefined;
      items = await entriesAdded(items, events, (limit) => get('/policy-decisions', { limit, order: 'desc', verdict }, { after }));
      return table('Policy decisions, newest first', ['When', 'Command', 'Verdict', 'Of', 'Rules that refused', 'Explain', 'Caused by', 'Replay'], items, (d) => [
        time(d.recordedAt), d.command, badge(d.verdict), entityLink(d.stream),
        d.evaluations.flatMap((e) => (e.results ?? []).filter((r) => r.outcome === 'fail').map((r) => `${r.name ?? r.policyId}: ${r.message ?? r.outcome}`)).join('; ') || '—',
        explainLink(d.correlationId), eventLink(d.stream, d.position), replayButton(d),
      ], { id: 'decisions' });
    },
  };
}

/**
 * "Replay": the decision re-run with the policy set and inputs it recorded, shown beside the record in a dialog, which
 * stays open while the page under it is re-read.
 */
function replayButton(decision) {
  return h('button', { type: 'button', class: 'replay', 'aria-haspopup': 'dialog', onclick: () => void showReplay(decision) }, 'Replay');
}

async function showReplay(decision) {
  const dialog = replayDialog();
  const body = dialog.querySelector('.dialog-body');
  body.replaceChildren(h('p', {}, 'Replaying…'));
  dialog.setAttribute('aria-busy', 'true');
  if (!dialog.open) dialog.showModal();
  try {
    const replay = await get(`/policy-decisions/${encodeURIComponent(decision.eventId)}/replay`);
    body.replaceChildren(...replayView(decision, replay));
  } catch (error) {
    if (error instanceof SignedOut) {
      dialog.close();
      navigate(`/login?${new URLSearchParams({ next: location.pathname + location.search })}`);
      return;
    }
    body.replaceChildren(h('p', { class: 'error', role: 'alert' }, error instanceof ApiProblem ? `${error.status}: ${error.message}` : String(error)));
  }
  dialog.setAttribute('aria-busy', 'false');
}

/** One dialog for the whole console, outside the page's data, so a live re-read does not take it away. */
function replayDialog() {
  const existing = document.getElementById('replay');
  if (existing) return existing;
  const dialog = h('dialog', { id: 'replay', 'aria-labelledby': 'replay-heading' },
    h('h2', { id: 'replay-heading' }, 'Replay of a policy decision'),
    h('div', { class: 'dialog-body' }),
    h('form', { method: 'dialog' }, h('button', { type: 'submit' }, 'Close')),
  );
  document.body.append(dialog);
  return dialog;
}

function replayView(decision, replay) {
  const recorded = replay.recorded.evaluations;
  const replayed = replay.replayed.evaluations;
  return [
    h('p', { id: 'replay-matches', class: replay.matches ? 'verdict-match ok' : 'verdict-match error' },
      replay.matches ? '✓ Matches: ' : '✗ Differs: ',
      replay.matches
        ? 'the replayed verdict and every policy’s result equal the recorded ones.'
        : 'the replay does not give what was recorded; the policy set or the rules changed meaning since.'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Decision'), h('dd', {}, `${decision.command} of `, code(replay.stream), ` (policy set revision ${replay.policySetRevision})`),
      h('dt', {}, 'Recorded verdict'), h('dd', { id: 'replay-recorded' }, badge(replay.recorded.verdict)),
      h('dt', {}, 'Replayed verdict'), h('dd', { id: 'replay-replayed' }, badge(replay.replayed.verdict)),
    ),
    ...recorded.map((was, i) => {
      const now = replayed[i] ?? { verdict: '—', results: [] };
      const rows = Array.from({ length: Math.max(was.results.length, now.results.length) }, (_, r) => ({ was: was.results[r], now: now.results[r] }));
      const judged = decision.evaluations?.[i];
      const of = judged ? `${judged.action} ${judged.target?.kind ?? ''} ${shortId(judged.target?.id)}` : `change ${i + 1}`;
      return table(`${of}: recorded ${was.verdict}, replayed ${now.verdict}`, ['Policy', 'Mode', 'Recorded', 'Replayed', 'Recorded message', 'Replayed message'], rows, ({ was: a, now: b }) => [
        (a ?? b)?.name ?? shortId((a ?? b)?.policyId), (a ?? b)?.mode ?? '—', badge(a?.outcome), badge(b?.outcome), a?.message ?? '—', b?.message ?? '—',
      ], { class: 'replay-results' });
    }),
  ];
}

function operationsPage() {
  return {
    title: 'Projections and reactors',
    // Every event moves some lag: re-read at most every two seconds, not on each.
    coalesceMs: 2000,
    watches: () => true,
    async view() {
      const [projections, reactors, parked] = await Promise.all([
        get('/projections'),
        get('/reactors'),
        get('/reactors/parked').catch((error) => {
          if (error instanceof ApiProblem && error.status === 403) return undefined;
          throw error;
        }),
      ]);
      return [
        h('section', { 'aria-labelledby': 'projections-heading' },
          h('h2', { id: 'projections-heading' }, 'Projections'),
          table('Each projection: where it stands in the log, and how far behind it is', ['Projection', 'Version', 'Generation', 'Applied', 'Lag (events)', 'Lag (s)', 'Active here', 'Position', 'Updated'], projections.items, (p) => [
            p.name, p.version, p.generation, p.eventsApplied, p.lagEvents, number(p.lagSeconds, 1), p.active ? 'yes' : 'no', code(p.position), time(p.updatedAt),
          ], { id: 'projections' }),
        ),
        h('section', { 'aria-labelledby': 'reactors-heading' },
          h('h2', { id: 'reactors-heading' }, 'Reactors'),
          table('Each reactor: its checkpoint, what it has not handled yet, and the events it set aside', ['Reactor', 'Lag (events)', 'Lag (s)', 'Parked', 'Parked on a bug', 'Checkpoint', 'Updated'], reactors.items, (r) => [
            r.name, r.lagCounts === 'all-events' ? `≤ ${r.lagEvents}` : r.lagEvents, number(r.lagSeconds, 1), r.parked, r.parkedBugs, code(r.position), time(r.updatedAt),
          ], { id: 'reactors' }),
          reactors.items.some((r) => r.lagCounts === 'all-events') ? h('p', { class: 'note' }, '≤: every event after the checkpoint, counted where this server does not run the reactor to know which it reads.') : null,
        ),
        h('section', { 'aria-labelledby': 'parked-heading' },
          h('h2', { id: 'parked-heading' }, 'Parked events'),
          parked === undefined
            ? h('p', {}, 'Parked events are shown to operators and admins.')
            : [
                h('p', {}, `${parked.total} parked${parked.total > parked.items.length ? `, the newest ${parked.items.length} shown` : ''}. `, code('sentinel reactors retry <id>'), ' tries one again.'),
                table('Events reactors set aside, newest first', ['Id', 'Reactor', 'Event', 'Of', 'Kind', 'Failures', 'Error', 'Parked', 'Retry asked'], parked.items, (p) => [
                  p.id, p.reactor, eventLink(p.stream, p.position, p.type), entityLink(p.stream), badge(p.kind), p.failures, p.error, time(p.parkedAt), time(p.retryRequestedAt),
                ], { id: 'parked' }),
              ],
        ),
      ];
    },
  };
}

function entityLink(stream) {
  const id = stream.slice(stream.indexOf('-') + 1);
  if (stream.startsWith('deployment-')) return link(`/deployments/${encodeURIComponent(id)}`, stream);
  if (stream.startsWith('plan-')) return link(`/plans/${encodeURIComponent(id)}`, stream);
  return link(`/audit?${new URLSearchParams({ stream })}`, stream);
}

function timelinePage(_match, query) {
  const correlationId = query.get('correlationId');
  return {
    title: 'Causal timeline',
    watches: () => false,
    controls: () => filterForm([{ name: 'correlationId', label: 'Correlation id', text: true }], query),
    async view() {
      if (!correlationId) return h('p', {}, 'Give the correlation id of a request (its X-Correlation-Id) to see everything it caused.');
      const timeline = await get('/timeline', { correlationId });
      return [
        h('p', {}, `${timeline.events} events under ${correlationId}${timeline.truncated ? ' (truncated)' : ''}.`),
        ...timeline.roots.map((root) => h('section', { class: 'tree' }, h('h2', {}, 'Caused by ', code(root.causationId)), h('ul', {}, ...root.events.map(timelineNode)))),
      ];
    },
  };
}

function timelineNode(node) {
  return h('li', {},
    h('div', { class: 'node' }, time(node.recordedAt), ' ', h('strong', {}, node.type), ' ', entityLink(node.stream), ` @${node.revision}`,
      node.actor ? ` by ${node.actor.kind} ${shortId(node.actor.id)}` : '', node.source ? ` via ${node.source}` : '', ' · ', eventLink(node.stream, node.position)),
    node.decision
      ? h('div', { class: 'decision' }, `${node.decision.command}: `, badge(node.decision.verdict), ` (policy set revision ${node.decision.policySet?.revision ?? node.decision.policySet})`,
          h('ul', {}, ...node.decision.evaluations.flatMap((e) => (e.results ?? []).map((r) => h('li', {}, `${r.name ?? r.policyId} (${r.mode}): `, badge(r.outcome), r.message ? ` ${r.message}` : ''))))
        )
      : null,
    node.children.length > 0 ? h('ul', {}, ...node.children.map(timelineNode)) : null,
  );
}

function auditPage(_match, query) {
  const at = query.get('at');
  let entries;
  return {
    title: 'Audit trail',
    watches: (event) => !query.get('stream') || event.stream === query.get('stream'),
    controls: () => h('div', {},
      filterForm([
        { name: 'stream', label: 'Stream', text: true },
        { name: 'type', label: 'Event type', text: true },
        { name: 'correlationId', label: 'Correlation id', text: true },
      ], query),
      verification(),
    ),
    async view(after, events) {
      const filters = { stream: query.get('stream') ?? undefined, type: query.get('type') ?? undefined, correlationId: query.get('correlationId') ?? undefined };
      entries = await entriesAdded(entries, events, (limit) => get('/audit', { ...filters, limit, order: 'desc' }, { after }));
      const items = entries.map((entry) => ({ ...entry, __current: entry.position === at }));
      return [
        table('Audit trail, newest first', ['When', 'Actor', 'Event', 'Stream', 'Summary', 'Position', 'Explain'], items, (e) => [
          time(e.time), e.actor ? `${e.actor.kind} ${shortId(e.actor.id)}` : '—', e.type, entityLink(e.stream), e.summary, code(e.position), explainLink(e.correlationId),
        ], { id: 'audit' }),
      ];
    },
  };
}

/**
 * The hash chain's verification, when asked: it reads and hashes every row of the trail, which takes seconds on a
 * long one, so neither a visit of the page nor a live update runs it.
 */
function verification() {
  const status = h('p', { id: 'audit-verify', role: 'status' });
  const button = h('button', { type: 'button', id: 'audit-verify-button' }, 'Verify the hash chain');
  button.addEventListener('click', async () => {
    button.disabled = true;
    status.className = '';
    status.textContent = 'Verifying every row of the hash chain…';
    try {
      const verify = await get('/audit/verify');
      status.className = verify.ok ? 'ok' : 'error';
      status.textContent = verify.ok ? `Hash chain verified: ${verify.rows} rows hold.` : `Hash chain broken at ${verify.brokenAt?.position ?? '?'}: ${verify.reason ?? ''}`;
    } catch (error) {
      if (error instanceof SignedOut) return;
      status.className = 'error';
      status.textContent = `The hash chain could not be verified: ${error instanceof ApiProblem ? `${error.status}: ${error.message}` : String(error)}`;
    } finally {
      button.disabled = false;
    }
  });
  return h('div', { class: 'verify' }, button, status);
}

/** A GET form that puts its fields in the page's query string. */
function filterForm(fields, query) {
  const form = h('form', { class: 'filters', role: 'search' },
    ...fields.map((field) => {
      const id = `filter-${field.name}`;
      const control = field.text
        ? h('input', { id, name: field.name, value: query.get(field.name) ?? '' })
        : h('select', { id, name: field.name }, ...field.options.map((option) => h('option', { value: option, selected: (query.get(field.name) ?? '') === option }, option || 'any')));
      return h('span', {}, h('label', { for: id }, field.label), control);
    }),
    h('button', { type: 'submit' }, 'Apply'),
  );
  form.addEventListener('submit', (submit) => {
    submit.preventDefault();
    const params = new URLSearchParams();
    for (const [name, value] of new window.FormData(form)) if (value) params.set(name, String(value));
    navigate(`${location.pathname}${params.size > 0 ? `?${params}` : ''}`);
  });
  return form;
}

// ---- routing and rendering -------------------------------------------------------------------------------------

let current;

function navigate(href) {
  history.pushState(null, '', href);
  void render();
}

async function render() {
  current?.dispose();
  const main = document.getElementById('main');
  const url = new URL(location.href);
  const route = PAGES.find((candidate) => candidate.path.test(url.pathname));
  const signedIn = Boolean(token());
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('logout').hidden = !signedIn;
  if (!route) {
    main.replaceChildren(h('h1', {}, 'Not found'), h('p', {}, 'No page here. '), link('/', 'Back to the fleet'));
    return;
  }
  const page = route.page(url.pathname.match(route.path), url.searchParams);
  if (!page.public && !signedIn) {
    history.replaceState(null, '', `/login?${new URLSearchParams({ next: url.pathname + url.search })}`);
    return render();
  }
  document.title = `${page.title} · Sentinel`;
  for (const anchor of document.querySelectorAll('#nav a')) {
    const href = anchor.getAttribute('href');
    if ((href === '/' ? url.pathname === '/' : url.pathname.startsWith(href))) anchor.setAttribute('aria-current', 'page');
    else anchor.removeAttribute('aria-current');
  }
  const data = h('div', { id: 'data', 'aria-busy': 'true' }, h('p', {}, 'Loading…'));
  main.replaceChildren(...[h('h1', {}, page.title), page.controls?.(), page.view ? data : undefined].filter(Boolean));
  if (!page.view) return;
  if (signedIn) live.start();
  // The stream's start is fixed before the first read, so no change between the two goes unseen.
  await live.ready;
  const view = pageView(page, data);
  current = view;
  await view.load();
}

/**
 * Loads a page's data, and again when an event it watches arrives: at once for a lone event, so it is on screen one
 * read after it arrived; in a burst, once more when the read under way is done and REFRESH_GAP_MS have passed since
 * it began, with every event that came meanwhile, so a busy log costs a few reads a second however fast it grows.
 * A page with `coalesceMs` waits that long after the first event of a burst instead. `view(after, events)` gets the
 * events since its last read (none on the first), so it can re-read only what they touch.
 */
function pageView(page, container) {
  let timer;
  let pending = [];
  let loading;
  let disposed = false;
  const load = async (events) => {
    const after = events?.at(-1)?.position;
    try {
      const content = await page.view(after, events);
      if (disposed) return;
      container.replaceChildren();
      append(container, [content]);
      container.setAttribute('aria-busy', 'false');
      container.dataset.loadedAfter = after ?? '';
    } catch (error) {
      if (disposed) return;
      if (error instanceof SignedOut) {
        navigate(`/login?${new URLSearchParams({ next: location.pathname + location.search })}`);
        return;
      }
      container.replaceChildren(h('p', { class: 'error', role: 'alert' }, error instanceof ApiProblem ? `${error.status}: ${error.message}` : String(error)));
      container.setAttribute('aria-busy', 'false');
    }
  };
  let began = -Infinity;
  /** Reads what the pending events touched, now or a little later, unless a read is under way. */
  const schedule = () => {
    if (pending.length === 0 || loading !== undefined || timer !== undefined || disposed) return;
    const wait = page.coalesceMs ?? Math.max(0, began + REFRESH_GAP_MS - Date.now());
    if (wait === 0) {
      void drain();
      return;
    }
    timer = setTimeout(() => {
      timer = undefined;
      void drain();
    }, wait);
  };
  const drain = async () => {
    const events = pending;
    pending = [];
    began = Date.now();
    loading = load(events);
    await loading;
    loading = undefined;
    // What arrived during the read is read next.
    schedule();
  };
  const onEvent = (event) => {
    if (!page.watches?.(event)) return;
    pending.push(event);
    schedule();
  };
  return {
    async load() {
      began = Date.now();
      loading = load(undefined);
      live.listeners.add(onEvent);
      await loading;
      loading = undefined;
      schedule();
    },
    dispose() {
      disposed = true;
      clearTimeout(timer);
      live.listeners.delete(onEvent);
    },
  };
}

document.addEventListener('click', (click) => {
  const anchor = click.target instanceof window.Element ? click.target.closest('a[href]') : null;
  if (!anchor || click.defaultPrevented || click.button !== 0 || click.metaKey || click.ctrlKey || click.shiftKey || click.altKey) return;
  const href = anchor.getAttribute('href');
  if (!href.startsWith('/') || href.startsWith('//')) return;
  click.preventDefault();
  navigate(href);
});
window.addEventListener('popstate', () => void render());
document.getElementById('logout').addEventListener('click', () => {
  signOut();
  navigate('/login');
});
void render().catch((error) => console.error(error));
