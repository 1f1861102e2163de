// Property tests of the command API through the real server: whatever a caller sends, Sentinel answers with
// a problem it can explain (never a 5xx), and a refused request leaves the event log exactly as it was.
import { randomUUID } from 'node:crypto';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { expect } from 'chai';
import fc from 'fast-check';
import { commandRoutes } from '../../commands/http/api.js';
import type { Route } from '../../commands/http/route.js';
import { queryRoutes } from '../../projections/http/query-routes.js';
import { READ_MODELS } from '../../projections/read-models.js';
import { startTestApi, type TestApi } from '../support/sentinel-api.js';

/**
 * Runs per property: half of what each names by default, to keep the suite's time; `FUZZ_SCALE` (a positive number)
 * scales them, `FUZZ_SCALE=4` for a long search before a release.
 */
const FUZZ_SCALE = Number(process.env['FUZZ_SCALE'] ?? 0.5);
const runs = (base: number) => Math.max(10, Math.round(base * (FUZZ_SCALE > 0 ? FUZZ_SCALE : 0.5)));

// ---- the routes and a valid body for each ---------------------------------------------------------------

/** The rows `commandApi` mounts; their handlers never run here, so the services behind them can be stand-ins. */
const WRITE_ROUTES = commandRoutes({ handler: {} as never, policy: {} as never, access: {} as never, secrets: {} as never, clock: {} as never, planTtlSeconds: 60 })
  .filter((route) => route.method !== 'get');
const keyOf = (route: Pick<Route, 'method' | 'path'>) => `${route.method.toUpperCase()} ${route.path}`;
const ROUTE = new Map(WRITE_ROUTES.map((route) => [keyOf(route), route]));
/** Routes are drawn by key, so that a counterexample names the route rather than printing its row. */
const routeKey = fc.constantFrom(...ROUTE.keys());

/** Every route the API mounts, reads included, for fuzzing what every route shares: query, headers, path. */
const ALL_ROUTES = [
  ...commandRoutes({ handler: {} as never, policy: {} as never, access: {} as never, secrets: {} as never, clock: {} as never, planTtlSeconds: 60 }),
  ...queryRoutes({ knex: {} as never, runtime: {} as never, telemetry: {} as never }),
];
const ANY_ROUTE = new Map(ALL_ROUTES.map((route) => [keyOf(route), route]));
const anyRouteKey = fc.constantFrom(...ANY_ROUTE.keys());
const idRouteKey = fc.constantFrom(...[...ANY_ROUTE.keys()].filter((key) => key.includes(':id')));

/** The resources the `:id` routes act on, replaced whenever a request changes one of them. */
interface Fleet {
  clusterId: string;
  workloadId: string;
  /** At revision 2, so that a rollback to revision 1 has somewhere to go. */
  deploymentId: string;
  planId: string;
  policyId: string;
  userId: string;
  serviceAccountId: string;
}

interface Seed {
  fleet: Fleet;
  /** Fresh for each request: names that must be unique. */
  n: string;
  /** An unused refresh token (for `POST /auth/refresh` only). */
  refreshToken: string;
}

const KUBECONFIG = Buffer.from('apiVersion: v1\nkind: Config\nclusters: []\n').toString('base64');

/** One valid body per write route; `undefined` for a route that takes none. */
const VALID: Record<string, (seed: Seed) => unknown> = {
  'POST /auth/login': () => ({ username: 'viewer', password: 'viewer-password-for-tests' }),
  'POST /auth/refresh': ({ refreshToken }) => ({ refreshToken }),
  'POST /users': ({ n }) => ({ username: `fuzz-${n}`, password: 'fuzz-password-1234', role: 'operator' }),
  'PATCH /users/:id': () => ({ role: 'viewer', disabled: false, password: 'another-password-1' }),
  'POST /service-accounts': ({ n }) => ({ name: `fuzz-${n}`, description: 'made by the fuzz test' }),
  'DELETE /service-accounts/:id': () => undefined,
  'POST /clusters': ({ n }) => ({
    name: `fuzz-${n}`,
    apiServer: 'https://10.1.2.3:6443',
    credentials: { source: 'kubeconfig-base64', data: KUBECONFIG },
    region: 'us-east-1',
    labels: { 'sentinel.io/tier': 'gpu', team: 'ml' },
    gpuSkus: ['nvidia-a100-80gb', 'nvidia-h100-80gb'],
  }),
  'PATCH /clusters/:id': () => ({
    apiServer: 'https://k8s.example.com',
    credentials: { source: 'kubeconfig-file', path: '/etc/sentinel/kubeconfig' },
    region: 'us-west-2',
    labels: { team: 'infra' },
    gpuSkus: ['nvidia-a100-80gb'],
  }),
  'POST /clusters/:id/cordon': () => ({ reason: 'kernel upgrade' }),
  'POST /clusters/:id/uncordon': () => undefined,
  'DELETE /clusters/:id': () => ({ reason: 'decommissioned' }),
  'POST /workloads': ({ n }) => ({
    name: `fuzz-${n}`,
    namespace: 'ml',
    type: 'inference',
    image: 'registry.local/llama:1.0',
    command: ['python', '-m', 'serve'],
    args: ['--port', '8080'],
    env: { MODEL: 'llama', LOG_LEVEL: 'info' },
    resources: { cpu: '4', memory: '16Gi', gpu: { count: 1, sku: 'nvidia-a100-80gb' } },
    labels: { team: 'ml' },
    slo: { latencyP99Ms: 250, successRate: 0.999 },
  }),
  'PATCH /workloads/:id': () => ({
    image: 'registry.local/llama:2.0',
    args: ['--port', '9090'],
    env: { LOG_LEVEL: 'debug' },
    resources: { cpu: '500m', memory: '8Gi', gpu: { count: 2, sku: 'nvidia-a100-80gb' } },
    slo: { latencyP99Ms: 100 },
  }),
  'DELETE /workloads/:id': () => ({ reason: 'replaced' }),
  'POST /deployments': ({ fleet }) => ({
    workloadId: fleet.workloadId,
    clusterId: fleet.clusterId,
    replicas: 2,
    strategy: { type: 'canary', steps: [{ weight: 10, pauseSeconds: 60 }, { weight: 50 }, { weight: 100 }] },
    driftPolicy: 'adopt',
  }),
  'POST /deployments/:id/scale': () => ({ replicas: 3 }),
  'POST /deployments/:id/rollback': () => ({ toRevision: 1, reason: 'bad rollout' }),
  'POST /deployments/:id/restart': () => ({ reason: 'pick up new config' }),
  'POST /deployments/:id/pause': () => ({ reason: 'investigating' }),
  'POST /deployments/:id/resume': () => ({ reason: 'resolved' }),
  'POST /deployments/:id/promote': () => ({ full: true }),
  'POST /deployments/:id/abort': () => ({ reason: 'bad canary' }),
  'PATCH /deployments/:id': () => ({
    workloadRevision: 1,
    strategy: { type: 'canary', steps: [{ weight: 20 }, { pause: { seconds: 30 } }, { analysis: { template: 'inference', interval: '1m' } }, { weight: 100 }] },
    driftPolicy: 'revert',
  }),
  'DELETE /deployments/:id': () => ({ reason: 'done' }),
  'POST /action-plans': ({ fleet }) => ({
    source: 'user',
    reason: 'traffic forecast',
    actions: [
      { kind: 'scale', deploymentId: fleet.deploymentId, replicas: 4 },
      { kind: 'reschedule', deploymentId: fleet.deploymentId, clusterId: fleet.clusterId, nodeSelector: { pool: 'a100' } },
      { kind: 'rollback', deploymentId: fleet.deploymentId, toRevision: 1 },
      { kind: 'restart', deploymentId: fleet.deploymentId },
      { kind: 'drain', clusterId: fleet.clusterId, node: 'node-1.pool-a' },
      { kind: 'update', deploymentId: fleet.deploymentId, workloadRevision: 2 },
    ],
    ttlSeconds: 3600,
    shadow: true,
  }),
  'POST /action-plans/:id/cancel': () => ({ reason: 'not needed' }),
  // Aimed at a namespace nothing runs in, so the policies the fuzzing creates judge nothing else.
  'POST /policies': ({ n }) => ({
    name: `fuzz-${n}`,
    description: 'made by the fuzz test',
    type: 'quota',
    mode: 'audit',
    priority: 10,
    selector: { namespaces: ['fuzz-nowhere'], actions: ['scale'] },
    parameters: { per: 'namespace', limits: { replicas: 10, gpusBySku: { 'nvidia-a100-80gb': 2 } } },
  }),
  'PATCH /policies/:id': () => ({ priority: 20, enabled: false }),
  'DELETE /policies/:id': () => undefined,
  'POST /autonomy/pause': () => ({ reason: 'fuzz' }),
  'POST /autonomy/resume': () => ({ reason: 'fuzz' }),
  'POST /policies/evaluate': ({ fleet }) => ({ change: { kind: 'scale', deploymentId: fleet.deploymentId, replicas: 3 } }),
  'POST /policies/impact': ({ fleet }) => ({
    policy: { id: fleet.policyId, patch: { mode: 'enforce', parameters: { limits: { replicas: 1 } } } },
    from: new Date(Date.now() - 3_600_000).toISOString(),
    to: new Date(Date.now() + 60_000).toISOString(),
  }),
  'POST /forensics/snapshots': () => ({ at: new Date().toISOString() }),
  'DELETE /forensics/snapshots/:id': () => undefined,
};

/** Write routes that act on a canary rollout in progress: refused with 409 when there is none. */
const NEEDS_ROLLOUT = new Set(['POST /deployments/:id/promote', 'POST /deployments/:id/abort']);

const ID_OF: Record<string, keyof Fleet> = {
  users: 'userId',
  'service-accounts': 'serviceAccountId',
  clusters: 'clusterId',
  workloads: 'workloadId',
  deployments: 'deploymentId',
  'action-plans': 'planId',
  policies: 'policyId',
};

/** The first path segment: which part of the fleet a route acts on. */
const segmentOf = (route: Route) => route.path.split('/')[1]!;

/** The route's path with the live resource it acts on (a made-up one where the fleet keeps none, e.g. a decision). */
function pathFor(route: Route, fleet: Fleet): string {
  const id = ID_OF[segmentOf(route)];
  return route.path.replace(':id', () => (id ? fleet[id] : NO_SUCH_ID));
}

const NO_SUCH_ID = randomUUID();

/** Every object key anywhere in a route's valid body, so random bodies can use names the schema knows. */
function keysIn(value: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(value)) value.forEach((item) => keysIn(item, into));
  else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) keysIn(item, into.add(key));
  }
  return into;
}

const SAMPLE_SEED: Seed = {
  fleet: { clusterId: randomUUID(), workloadId: randomUUID(), deploymentId: randomUUID(), planId: randomUUID(), policyId: randomUUID(), userId: randomUUID(), serviceAccountId: randomUUID() },
  n: 'sample',
  refreshToken: 'sample-refresh-token',
};

// ---- mutations of a valid body ------------------------------------------------------------------------

/** What a mutation puts in; described rather than built, so a counterexample prints small. */
type Junk =
  | { kind: 'json'; value: fc.JsonValue }
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'enum'; value: string }
  | { kind: 'huge'; char: string; length: number }
  | { kind: 'deep'; shape: 'array' | 'object'; depth: number };

/**
 * `at` picks the target among the candidate paths of the body as it then stands. `retext` and `renumber` keep
 * the field's type, so the value gets past the type checks to the rules and the storage behind them.
 */
type Mutation =
  | { op: 'drop'; at: number }
  | { op: 'set'; at: number; junk: Junk }
  | { op: 'add'; at: number; key: string; junk: Junk }
  | { op: 'retext'; at: number; junk: Junk }
  | { op: 'renumber'; at: number; junk: Junk };

const awkwardString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  // Characters that are valid JSON string content but trouble for whatever stores or prints them.
  {
    weight: 2,
    arbitrary: fc.string({
      unit: fc.constantFrom('\u0000', '\u0007', '\ud800', '\udfff', '\u202e', '\ufeff', '\uffff', '"', '\\', '%', '\n', 'é', '😀', 'a'),
      minLength: 1,
      maxLength: 8,
    }),
  },
  fc.constantFrom('', ' ', 'null', '0', '-1', '../../etc/passwd', "'; drop table sentinel_events; --", '__proto__', 'constructor', '${x}'),
);

const stringJunk = awkwardString.map((value): Junk => ({ kind: 'string', value }));
const numberJunk = fc
  .oneof(
    fc.constantFrom(-1, -0, 0.5, -1e-7, 2 ** 31, 2 ** 53 + 2, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 1e21, 1e308, -1e308),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
  )
  .map((value): Junk => ({ kind: 'number', value }));
const enumJunk = fc
  .oneof(
    fc.constantFrom('Rolling', 'ROLLING', 'blue-green', 'canary ', 'inframind', 'system', 'admin', 'kubeconfig', 'Inference', 'dry-run'),
    fc.string({ minLength: 1, maxLength: 12 }),
  )
  .map((value): Junk => ({ kind: 'enum', value }));
const hugeJunk = fc.record({
  kind: fc.constant('huge' as const),
  char: fc.constantFrom('a', 'é', '😀', '\u0000'),
  // Most stay under the 1 MiB body limit; the largest go over it.
  length: fc.oneof(fc.integer({ min: 1_000, max: 100_000 }), fc.constant(1_100_000)),
});
const deepJunk = fc.record({
  kind: fc.constant('deep' as const),
  shape: fc.constantFrom('array' as const, 'object' as const),
  depth: fc.integer({ min: 10, max: 3_000 }),
});
const junk: fc.Arbitrary<Junk> = fc.oneof(
  fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' }).map((value): Junk => ({ kind: 'json', value })),
  stringJunk,
  numberJunk,
  enumJunk,
  hugeJunk,
  deepJunk,
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('drop' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), junk }),
  fc.record({
    op: fc.constant('add' as const),
    at: fc.nat(),
    key: fc.oneof(fc.constantFrom('extra', 'id', 'Reason', 'type', '__proto__', 'constructor', ''), fc.string({ unit: 'binary', maxLength: 20 })),
    junk,
  }),
  // Weighted up: a value of the right type is the one that gets furthest into the server.
  { weight: 3, arbitrary: fc.record({ op: fc.constant('retext' as const), at: fc.nat(), junk: fc.oneof({ weight: 3, arbitrary: stringJunk }, enumJunk, hugeJunk) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('renumber' as const), at: fc.nat(), junk: numberJunk }) },
);

/** Mostly one mutation, so that the others do not get the body refused before the one under test is reached. */
const mutations = fc.oneof({ weight: 3, arbitrary: fc.tuple(mutation) }, fc.array(mutation, { minLength: 2, maxLength: 4 }));

function build(junk: Junk): unknown {
  switch (junk.kind) {
    case 'huge':
      return junk.char.repeat(junk.length);
    case 'deep': {
      let value: unknown = 'bottom';
      for (let i = 0; i < junk.depth; i++) value = junk.shape === 'array' ? [value] : { a: value };
      return value;
    }
    default:
      return junk.value;
  }
}

type Path = (string | number)[];

/** Paths to every value below the root, down to a depth that keeps deep junk from drowning the real fields. */
function pathsIn(root: unknown, maxDepth = 12): Path[] {
  const paths: Path[] = [];
  const pending: { value: unknown; path: Path }[] = [{ value: root, path: [] }];
  while (pending.length > 0) {
    const { value, path } = pending.shift()!;
    if (value === null || typeof value !== 'object' || path.length >= maxDepth) continue;
    const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((item, i) => [i, item]) : Object.entries(value);
    for (const [key, item] of entries) {
      paths.push([...path, key]);
      pending.push({ value: item, path: [...path, key] });
    }
  }
  return paths;
}

function valueAt(root: unknown, path: Path): unknown {
  let value = root;
  for (const key of path) value = (value as Record<string | number, unknown>)[key];
  return value;
}

const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/** Applies the mutations in turn to a copy of the valid body (`{}` for a route that takes none). */
function mutate(valid: unknown, mutations: Mutation[]): unknown {
  let body: unknown = structuredClone(valid ?? {});
  for (const m of mutations) {
    const paths = pathsIn(body);
    const candidates = {
      drop: paths,
      set: paths,
      add: [[], ...paths].filter((path) => isRecord(valueAt(body, path))),
      retext: paths.filter((path) => typeof valueAt(body, path) === 'string'),
      renumber: paths.filter((path) => typeof valueAt(body, path) === 'number'),
    }[m.op];
    if (candidates.length === 0) {
      if (m.op === 'set') body = build(m.junk);
      continue;
    }
    const path = candidates[m.at % candidates.length]!;
    if (m.op === 'add') {
      // defineProperty, so that a key such as "__proto__" becomes a field of the JSON rather than a prototype.
      Object.defineProperty(valueAt(body, path), m.key, { value: build(m.junk), enumerable: true, configurable: true, writable: true });
      continue;
    }
    const parent = valueAt(body, path.slice(0, -1)) as Record<string | number, unknown>;
    const key = path[path.length - 1]!;
    if (m.op === 'drop') {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
    } else {
      parent[key] = build(m.junk);
    }
  }
  return body;
}

// ---- talking to the server -----------------------------------------------------------------------------

type HeaderMap = Record<string, string>;
const JSON_TYPE: HeaderMap = { 'content-type': 'application/json' };
const contentTypeHeader = (type: string | undefined): HeaderMap => (type === undefined ? {} : { 'content-type': type });

const RECORDED_WITH_A_REFUSAL = ['PolicyEvaluated', 'ActionPlanSubmitted', 'ActionPlanValidationStarted', 'ActionPlanRejected'];

function isPolicyRefusal(answer: Answer): boolean {
  return answer.status === 422 && answer.text.includes('"urn:sentinel:problem:policy-violation"');
}

interface Answer {
  status: number;
  contentType: string;
  text: string;
}

/** One request, as admin unless the headers say otherwise; the body goes as it is (bytes or text), with the given headers. */
async function send(api: TestApi, method: string, path: string, body: string | Uint8Array | undefined, headers: HeaderMap): Promise<Answer> {
  const response = await fetch(api.url + path, {
    method: method.toUpperCase(),
    headers: { authorization: `Bearer ${api.tokens.admin}`, ...headers },
    body,
  });
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', text: await response.text() };
}

function describeExchange(route: Route, path: string, body: string | Uint8Array | undefined, answer: Answer): string {
  const sent = body === undefined ? '(no body)' : typeof body === 'string' ? JSON.stringify(body.slice(0, 400)) : `${body.length} bytes`;
  return `${route.method.toUpperCase()} ${path} ${sent}${typeof body === 'string' && body.length > 400 ? ` …(${body.length} chars)` : ''} → ${answer.status} ${answer.text.slice(0, 400)}`;
}

const json = (value: unknown): string | undefined => (value === undefined ? undefined : JSON.stringify(value));

const DECOMPRESS: Record<string, (bytes: Uint8Array) => unknown> = { gzip: gunzipSync, deflate: inflateSync, br: brotliDecompressSync };

function decompresses(bytes: Uint8Array, encoding: string): boolean {
  try {
    DECOMPRESS[encoding]!(bytes);
    return true;
  } catch {
    return false;
  }
}

function isJson(bytes: Uint8Array): boolean {
  try {
    // As the body parser reads it: UTF-8, a byte-order mark dropped, bad sequences replaced.
    JSON.parse(new TextDecoder().decode(bytes));
    return true;
  } catch {
    return false;
  }
}

// ---- query strings, headers and path parameters ------------------------------------------------------

const percentEncoded = (bytes: Uint8Array): string => [...bytes].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
/** Any text as UTF-8, every byte percent-encoded (an unpaired surrogate goes as U+FFFD, as a browser sends it). */
const encodedText = (text: string): string => percentEncoded(new TextEncoder().encode(text));
const base64url = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

/** What a query parameter or path segment may be, as it goes on the wire. */
const wireText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }).map(encodedText),
  // Bytes that need not be UTF-8 at all.
  fc.uint8Array({ maxLength: 40 }).map(percentEncoded),
  fc.string({ unit: 'binary', maxLength: 40 }).map((text) => base64url(text)),
  fc.jsonValue({ maxDepth: 2 }).map((value) => base64url(JSON.stringify(value))),
  fc.constantFrom(
    '', '%', '%0', '%zz', '%00', '%C0%80', '%ED%A0%80', '%F4%90%80%80', '%E0%A4%A', '..', '%2e%2e', '%2F', 'a%2Fb', '+', '%20',
    '-1', '0', '1', '500', '501', '1e3', '1.5', 'NaN', 'Infinity', 'true', '[]', '{}',
    // (A position the log has not reached is left out: a read told to wait for one answers 503 by design.)
    '0000000000000000-0000000000000000', '0000000000000001-00000000000000zz',
    '-271821-04-20T00:00:00Z', '+275760-09-13T00:00:00.000Z', '0000-01-01T00:00:00Z', '-000001-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '2026-02-30T00:00:00Z',
    '00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'FFFFFFFF-FFFF-4FFF-BFFF-FFFFFFFFFFFF',
    base64url(JSON.stringify(['\u0000', 'x'])), base64url('\u0000'), base64url('0000000000000001-0000000000000001'),
  ),
  fc.integer({ min: 1, max: 6000 }).map((length) => 'x'.repeat(length)),
);

/** Parameter names the routes read, and others. */
const PARAMETER_NAMES = [
  ...new Set([...Object.values(READ_MODELS).flatMap((model) => model.filters), 'actor', 'stream', 'type', 'correlationId', 'from', 'to', 'limit', 'cursor', 'after']),
];
const queryString = fc
  .array(fc.tuple(fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...PARAMETER_NAMES).map(encodedText) }, wireText), wireText), { minLength: 1, maxLength: 4 })
  .map((pairs) => pairs.map(([name, value]) => `${name}=${value}`).join('&'));

/** A header value as a client may send one: visible ASCII and Latin-1, spaces and tabs (no CR, LF or NUL). */
const headerText = (maxLength: number) =>
  fc.string({ unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff }), fc.constant(0x09)).map((code) => String.fromCharCode(code)), maxLength });
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const HEADERS: Record<string, fc.Arbitrary<string>> = {
  authorization: fc.oneof(headerText(200), headerText(200).map((token) => `Bearer ${token}`), fc.constantFrom('Bearer', 'Bearer ', 'bearer  x', 'Basic dXNlcjpwYXNz')),
  'x-correlation-id': fc.oneof(headerText(200), fc.constantFrom('a'.repeat(128), 'a'.repeat(129), 'ok.id:1-2_3')),
  traceparent: fc.oneof(headerText(80), fc.nat({ max: TRACEPARENT.length - 1 }).chain((at) => headerText(2).map((junk) => TRACEPARENT.slice(0, at) + junk + TRACEPARENT.slice(at + 1)))),
  'idempotency-key': fc.oneof(headerText(300), fc.uuid()),
  'x-sentinel-emergency': headerText(600),
  'content-type': fc.oneof(headerText(80), fc.constantFrom('application/json; charset=latin1', 'application/json; charset=utf-16', 'application/json;;', 'application/json; charset="', '*/*')),
  accept: headerText(100),
  'x-forwarded-for': headerText(100),
};
const headerSet = fc.uniqueArray(fc.constantFrom(...Object.keys(HEADERS)), { minLength: 1, maxLength: 3 }).chain((names) =>
  fc.tuple(...names.map((name) => HEADERS[name]!.map((value): [string, string] => [name, value]))).map((pairs) => Object.fromEntries(pairs) as HeaderMap),
);

describe('command API under fuzzing', function () {
  this.timeout(120_000);
  let api: TestApi;
  let fleet: Fleet;
  let counter = 0;
  const unique = () => `${process.pid}-${++counter}`;

  const create = async (path: string, body: unknown): Promise<string> => {
    const reply = await api.request<{ id: string }>('post', path, { body });
    expect(reply.status, `setting up ${path}: ${JSON.stringify(reply.body)}`).to.be.oneOf([201, 202]);
    return reply.body.id;
  };
  const seed = async (route?: Route): Promise<Seed> => ({
    fleet,
    n: unique(),
    refreshToken: route && keyOf(route) === 'POST /auth/refresh' ? await refreshToken() : 'unused',
  });
  const refreshToken = async (): Promise<string> => {
    const login = await api.request<{ refreshToken: string }>('post', '/auth/login', {
      as: 'anonymous',
      body: { username: 'viewer', password: 'viewer-password-for-tests' },
    });
    expect(login.status).to.equal(200);
    return login.body.refreshToken;
  };

  /** Puts back what a request changed, so the next one starts from live resources. */
  const replace = async (segment: string): Promise<void> => {
    const s = await seed();
    if (segment === 'users') fleet = { ...fleet, userId: await create('/users', VALID['POST /users']!(s)) };
    if (segment === 'service-accounts') fleet = { ...fleet, serviceAccountId: await create('/service-accounts', VALID['POST /service-accounts']!(s)) };
    if (segment === 'clusters' || segment === 'workloads' || segment === 'deployments') {
      const clusterId = await create('/clusters', VALID['POST /clusters']!(s));
      // The deployment runs a workload of its own: the fleet's workload stays free to be placed on the fleet's cluster.
      const placedId = await create('/workloads', VALID['POST /workloads']!({ ...s, n: `${s.n}-placed` }));
      const workloadId = await create('/workloads', VALID['POST /workloads']!(s));
      const deploymentId = await create('/deployments', { workloadId: placedId, clusterId, replicas: 2 });
      expect((await api.request('patch', `/workloads/${placedId}`, { body: { image: 'registry.local/llama:1.1' } })).status).to.equal(202);
      expect((await api.request('patch', `/deployments/${deploymentId}`)).status).to.equal(202);
      fleet = { ...fleet, clusterId, workloadId, deploymentId };
    }
    if (segment === 'policies') fleet = { ...fleet, policyId: await create('/policies', VALID['POST /policies']!(s)) };
    if (segment === 'action-plans') {
      const planId = await create('/action-plans', { reason: 'fuzz', actions: [{ kind: 'restart', deploymentId: fleet.deploymentId }] });
      fleet = { ...fleet, planId };
    }
  };

  /** Sends one request and checks what every answer must satisfy; returns the answer, and how to name it, for more checks. */
  const exchange = async (route: Route, body: string | Uint8Array | undefined, headers: HeaderMap, path = pathFor(route, fleet)): Promise<Answer & { said: string }> => {
    const head = await api.head();
    const answer = await send(api, route.method, path, body, headers);
    const said = `${JSON.stringify(headers)} ${describeExchange(route, path, body, answer)}`;
    expect(answer.status, `a 5xx: ${said}`).to.be.below(500);
    if (answer.status >= 400) {
      expect(answer.contentType, `not a problem: ${said}`).to.match(/^application\/problem\+json/);
      if (isPolicyRefusal(answer)) {
        // A refusal by policy is a decision, and decisions are recorded: only the decision (and, for a plan, its rejection) may be appended.
        const appended = (await api.eventsSince(head)).map((event) => event.type);
        expect(appended, `a policy refusal appended more than its decision: ${said}`).to.satisfy((types: string[]) =>
          types.every((type) => RECORDED_WITH_A_REFUSAL.includes(type)),
        );
      } else {
        expect(await api.head(), `refused, yet events were appended: ${said}`).to.equal(head);
      }
    } else if (route.path.includes(':id')) {
      await replace(segmentOf(route));
    }
    return { ...answer, said };
  };

  before(async () => {
    // The valid cluster change names a kubeconfig file there; it need not exist for the change to be accepted.
    api = await startTestApi(undefined, { SENTINEL_KUBECONFIG_DIR: '/etc/sentinel' });
    fleet = { ...SAMPLE_SEED.fleet };
    for (const segment of ['users', 'service-accounts', 'clusters', 'action-plans', 'policies']) await replace(segment);
  });
  after(async () => api?.stop());

  it('has a valid body for every write route, and the server takes each as it is', async () => {
    expect(WRITE_ROUTES.map(keyOf).filter((key) => !(key in VALID)), 'write routes without a valid body here').to.deep.equal([]);
    for (const route of WRITE_ROUTES) {
      const body = VALID[keyOf(route)]!(await seed(route));
      const answer = await exchange(route, json(body), body === undefined ? {} : JSON_TYPE);
      // No reactor runs here, so no canary rollout is ever in progress: promote and abort are well formed and refused.
      if (NEEDS_ROLLOUT.has(keyOf(route))) expect(answer.status, answer.said).to.equal(409);
      else expect(answer.status, answer.said).to.be.within(200, 299);
    }
  });

  it('(a) random JSON bodies: never a 5xx, and a refusal appends nothing', async () => {
    const arbitrary = routeKey.chain((route) => {
      const known = [...keysIn(VALID[route]!(SAMPLE_SEED))];
      const key = known.length > 0 ? fc.oneof(fc.constantFrom(...known), fc.string()) : fc.string();
      return fc.tuple(
        fc.constant(route),
        fc.oneof(
          fc.jsonValue({ maxDepth: 4, stringUnit: 'binary' }),
          // Objects with the field names the route knows, so the values get looked at too.
          fc.dictionary(key, fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' }), { maxKeys: 6 }),
        ),
      );
    });
    await fc.assert(
      fc.asyncProperty(arbitrary, async ([route, body]) => {
        await exchange(ROUTE.get(route)!, JSON.stringify(body), JSON_TYPE);
      }),
      { numRuns: runs(200) },
    );
  });

  it('(b) mutated valid bodies: never a 5xx, and a refusal appends nothing', async () => {
    const arbitrary = fc.tuple(routeKey, mutations);
    await fc.assert(
      fc.asyncProperty(arbitrary, async ([key, changes]) => {
        const route = ROUTE.get(key)!;
        const body = mutate(VALID[key]!(await seed(route)), changes);
        await exchange(route, JSON.stringify(body), JSON_TYPE);
      }),
      { numRuns: runs(200) },
    );
  });

  it('(c) a body that is not JSON, sent as application/json: 400', async () => {
    const samples = WRITE_ROUTES.map((route) => json(VALID[keyOf(route)]!(SAMPLE_SEED))).filter((text) => text !== undefined);
    const encode = (text: string) => new TextEncoder().encode(text);
    const notJson = fc
      .oneof(
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.string({ unit: 'binary', minLength: 1, maxLength: 100 }).map(encode),
        // Valid bodies cut short.
        fc.tuple(fc.constantFrom(...samples), fc.nat()).map(([text, at]) => encode(text.slice(0, at % text.length))),
        fc
          .constantFrom("{'a': 1}", '{a: 1}', '[1,]', '{"a": 1,}', 'NaN', 'undefined', '+1', '01', '.5', '0x10', 'Infinity', '"open', '{"a":1}{"b":2}', ' ', '\u0000', '{"__proto__": ')
          .map(encode),
      )
      .filter((bytes) => bytes.length > 0 && !isJson(bytes));
    const contentType = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/merge-patch+json');
    await fc.assert(
      fc.asyncProperty(routeKey, notJson, contentType, async (key, bytes, type) => {
        const route = ROUTE.get(key)!;
        const answer = await exchange(route, bytes, contentTypeHeader(type));
        expect(answer.status, answer.said).to.equal(400);
      }),
      { numRuns: runs(150) },
    );
  });

  it('(c) any body sent as another media type: 415 (400 where the route takes no body)', async () => {
    const bytes = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 300 }),
      routeKey.map((key) => new TextEncoder().encode(json(VALID[key]!(SAMPLE_SEED)) ?? '{}')),
    );
    const contentType = fc.constantFrom(
      undefined,
      'text/plain',
      'text/plain; charset=utf-8',
      'text/json',
      'application/x-www-form-urlencoded',
      'application/xml',
      'application/octet-stream',
      'multipart/form-data; boundary=x',
    );
    await fc.assert(
      fc.asyncProperty(routeKey, bytes, contentType, async (key, body, type) => {
        const route = ROUTE.get(key)!;
        const answer = await exchange(route, body, contentTypeHeader(type));
        expect(answer.status, answer.said).to.equal(route.body ? 415 : 400);
      }),
      { numRuns: runs(100) },
    );
  });

  it('(c) a compressed body that does not decompress: 400; an unknown Content-Encoding: 415', async () => {
    const corrupt = fc
      .tuple(fc.constantFrom(...Object.keys(DECOMPRESS)), fc.uint8Array({ minLength: 1, maxLength: 300 }))
      .filter(([encoding, bytes]) => !decompresses(bytes, encoding))
      .map(([encoding, bytes]) => ({ encoding, bytes, expected: 400 }));
    const unknown = fc
      .tuple(fc.constantFrom('compress', 'x-sentinel', 'gzip, br', 'zip'), fc.uint8Array({ minLength: 1, maxLength: 300 }))
      .map(([encoding, bytes]) => ({ encoding, bytes, expected: 415 }));
    await fc.assert(
      fc.asyncProperty(routeKey, fc.oneof(corrupt, unknown), async (key, { encoding, bytes, expected }) => {
        const route = ROUTE.get(key)!;
        const answer = await exchange(route, bytes, { ...JSON_TYPE, 'content-encoding': encoding });
        expect(answer.status, answer.said).to.equal(expected);
      }),
      { numRuns: runs(100) },
    );
  });

  /** A route's valid body (none for a read), with what it takes to send it as it is. */
  const validRequest = async (route: Route): Promise<{ body: string | undefined; headers: HeaderMap }> => {
    if (route.method === 'get') return { body: undefined, headers: {} };
    const body = json(VALID[keyOf(route)]!(await seed(route)));
    return { body, headers: body === undefined ? {} : JSON_TYPE };
  };

  it('(d) any query string on any route, reads included: never a 5xx, and a refusal appends nothing', async () => {
    await fc.assert(
      fc.asyncProperty(anyRouteKey, queryString, async (key, query) => {
        const route = ANY_ROUTE.get(key)!;
        const { body, headers } = await validRequest(route);
        await exchange(route, body, headers, `${pathFor(route, fleet)}?${query}`);
      }),
      { numRuns: runs(80) },
    );
  });

  it('(d) any control character in a query parameter: 400 naming the parameter', async () => {
    const control = fc.oneof(fc.integer({ min: 0, max: 0x1f }), fc.integer({ min: 0x7f, max: 0x9f })).map((code) => String.fromCharCode(code));
    const reads = fc.constantFrom(...[...ANY_ROUTE.keys()].filter((key) => key.startsWith('GET ')));
    await fc.assert(
      fc.asyncProperty(reads, fc.constantFrom(...PARAMETER_NAMES), fc.string({ maxLength: 10 }), control, fc.string({ maxLength: 10 }), async (key, name, before, bad, after) => {
        const route = ANY_ROUTE.get(key)!;
        const answer = await exchange(route, undefined, {}, `${pathFor(route, fleet)}?${name}=${encodedText(before + bad + after)}`);
        expect(answer.status, answer.said).to.equal(400);
        expect((JSON.parse(answer.text) as { errors: { path: string }[] }).errors[0]!.path, answer.said).to.equal(name);
      }),
      { numRuns: runs(60) },
    );
  });

  it('(e) any value of the headers the API reads, on any route: never a 5xx, and a refusal appends nothing', async () => {
    await fc.assert(
      fc.asyncProperty(anyRouteKey, headerSet, async (key, fuzzed) => {
        const route = ANY_ROUTE.get(key)!;
        const { body, headers } = await validRequest(route);
        await exchange(route, body, { ...headers, ...fuzzed });
      }),
      { numRuns: runs(80) },
    );
  });

  it('(f) any path id on any route with one: a 4xx, never a 5xx, and nothing appended', async () => {
    // Not a segment that URL normalisation removes, turning `/clusters/:id` into the list `/clusters/`.
    const segment = fc.oneof(wireText, fc.uuid()).filter((id) => !['', '.', '%2e', '%2E'].includes(id));
    await fc.assert(
      fc.asyncProperty(idRouteKey, segment, async (key, id) => {
        const route = ANY_ROUTE.get(key)!;
        const { body, headers } = await validRequest(route);
        const answer = await exchange(route, body, headers, route.path.replace(':id', id));
        expect(answer.status, answer.said).to.be.within(400, 499);
      }),
      { numRuns: runs(80) },
    );
  });
});
