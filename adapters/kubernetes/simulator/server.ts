// The HTTPS front of the simulator: bearer-token auth, injected faults and latency, body parsing, routing to discovery,
// watches, the REST handlers and the simulated pods' inference metrics, and every error as a Kubernetes Status.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, type StatusBody } from './api-error.js';
import type { Faults } from './faults.js';
import { Handlers, requireVerb } from './handlers.js';
import { EXPOSITION_CONTENT_TYPE, podMetricsTarget, podMetricsText, servesMetrics, type PodMetricsTarget } from './pod-metrics.js';
import { includeObjectOf, negotiateTable, toTable, type TableOptions } from './printing.js';
import type { Registry } from './registry.js';
import { apiGroup, apiGroupList, apiResourceList, apiVersions, PODS } from './resources.js';
import { route, type DiscoveryTarget, type ResourceTarget } from './routes.js';
import type { ServingCertificate } from './tls.js';
import type { KubeObject, Pod } from './types.js';
import type { WatchHub } from './watch.js';

/** The API server's default request size limit. */
const MAX_BODY_BYTES = 3 * 1024 * 1024;

export const SIMULATED_VERSION = {
  major: '1',
  minor: '31',
  gitVersion: 'v1.31.0',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2024-08-13T00:00:00Z',
  goVersion: 'go1.22.5',
  compiler: 'gc',
  platform: 'linux/amd64',
};

export interface ServerParts {
  registry: Registry;
  faults: Faults;
  watches: WatchHub;
  token: string;
  certificate: ServingCertificate;
  /** Set once the control loop has failed: every request then answers 500 with it, so the failure is seen. */
  failure: () => unknown;
}

function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (response.headersSent || response.destroyed) return;
  const text = JSON.stringify(body);
  response.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  response.end(text);
}

function sendStatus(response: ServerResponse, error: ApiError): void {
  const status: StatusBody = error.toStatus();
  const retry: Record<string, string> = error.code === 429 || error.code === 503 ? { 'Retry-After': '1' } : {};
  sendJson(response, error.code, status, retry);
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw new ApiError(413, 'Request entity too large: limit is 3145728', 'RequestEntityTooLarge');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseBody(text: string, contentType: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    if (contentType === 'application/apply-patch+yaml') {
      throw new ApiError(415, 'the cluster simulator reads apply patches as JSON (YAML apply bodies are not supported)', 'UnsupportedMediaType');
    }
    throw new ApiError(400, `couldn't get version/kind; json parse error: the request body is not valid JSON`, 'BadRequest');
  }
}

export class SimulatorServer {
  readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly handlers: Handlers;

  constructor(private readonly parts: ServerParts) {
    this.handlers = new Handlers(parts.registry);
    this.server = createServer({ key: parts.certificate.keyPem, cert: parts.certificate.certPem }, (request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        // Reaching here means the handler itself failed after answering began; the connection is the only channel left.
        response.destroy(error instanceof Error ? error : new Error(String(error)));
      });
    });
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new Error('the cluster simulator is not listening on a TCP port');
    return address.port;
  }

  async close(): Promise<void> {
    this.parts.watches.endAll();
    const closed = new Promise<void>((resolve, reject) => this.server.close((error) => (error ? reject(error) : resolve())));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    try {
      await this.serve(request, response);
    } catch (error) {
      if (error instanceof ApiError) sendStatus(response, error);
      else sendStatus(response, new ApiError(500, `cluster simulator internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`));
    }
  }

  private async serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'https://127.0.0.1');
    const method = (request.method ?? 'GET').toUpperCase();
    const contentType = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const text = await readBody(request);

    if (this.parts.faults.latencyMs > 0) await sleep(this.parts.faults.latencyMs);
    const failure = this.parts.failure();
    if (failure !== undefined) {
      throw new ApiError(500, `cluster simulator control loop failed: ${failure instanceof Error ? (failure.stack ?? failure.message) : String(failure)}`);
    }
    if (request.headers.authorization !== `Bearer ${this.parts.token}`) throw new ApiError(401, 'Unauthorized', 'Unauthorized');
    const injected = this.parts.faults.takeFailure(method, url.pathname);
    if (injected !== undefined) throw new ApiError(injected, `injected fault: ${method} ${url.pathname} answers ${injected}`);

    const metrics = podMetricsTarget(url.pathname);
    if (metrics) {
      this.servePodMetrics(metrics, method, response);
      return;
    }
    const target = route(url.pathname);
    if (!target) throw new ApiError(404, 'the server could not find the requested resource', 'NotFound');
    if (target.type === 'discovery') {
      if (method !== 'GET') throw new ApiError(405, 'the server does not allow this method on the requested resource', 'MethodNotAllowed');
      if (target.root === 'health') {
        response.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 2 });
        response.end('ok');
        return;
      }
      sendJson(response, 200, this.discovery(target, request));
      return;
    }
    const body = parseBody(text, contentType);
    const table = this.tableOptions(target, method, request, url.searchParams);
    const watching = method === 'GET' && ['true', '1'].includes(url.searchParams.get('watch') ?? '');
    if (watching) {
      requireVerb(target.def, 'watch');
      const accepts = this.handlers.selector(target, url.searchParams);
      const view = (object: KubeObject) => this.handlers.view(target.def, object);
      const transform = table
        ? (object: KubeObject) => toTable(target.def, [view(object)], { resourceVersion: object.metadata.resourceVersion }, { ...table, now: Date.now() })
        : view;
      this.parts.watches.serve(target, url.searchParams, accepts, response, transform);
      return;
    }
    const result = this.handlers.handle(target, {
      method,
      query: url.searchParams,
      contentType,
      body,
      userAgent: String(request.headers['user-agent'] ?? ''),
    });
    sendJson(response, result.status, table && result.status === 200 ? this.asTable(target, result.body, table) : result.body);
  }

  /** The simulated inference metrics of one pod, or of every pod at once (one scrape target for a test Prometheus). */
  private servePodMetrics(target: PodMetricsTarget, method: string, response: ServerResponse): void {
    if (method !== 'GET') throw new ApiError(405, 'the server does not allow this method on the requested resource', 'MethodNotAllowed');
    const pods =
      target.scope === 'all' ? (this.parts.registry.list(PODS) as Pod[]) : [this.parts.registry.find(PODS, target.namespace, target.name) as Pod | undefined];
    const serving = pods.filter((pod): pod is Pod => pod !== undefined && servesMetrics(pod));
    if (target.scope === 'pod' && serving.length === 0) {
      throw new ApiError(404, `pod ${target.namespace}/${target.name} serves no metrics: it does not exist or is not running`, 'NotFound');
    }
    const text = podMetricsText(serving, Date.now(), target.scope === 'all');
    response.writeHead(200, { 'Content-Type': EXPOSITION_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
    response.end(text);
  }

  /** How to print a read as a Table, when the client's Accept asks for one (kubectl does); undefined for plain JSON. */
  private tableOptions(target: ResourceTarget, method: string, request: IncomingMessage, query: URLSearchParams): Omit<TableOptions, 'now'> | undefined {
    if (method !== 'GET' || (target.subresource !== undefined && target.subresource !== 'status')) return undefined;
    const version = negotiateTable(request.headers.accept);
    return version ? { version, includeObject: includeObjectOf(query) } : undefined;
  }

  /** A list or a single object, as a Table of the resource's printer. */
  private asTable(target: ResourceTarget, body: unknown, table: Omit<TableOptions, 'now'>): unknown {
    const options = { ...table, now: Date.now() };
    const read = body as KubeObject & { items?: KubeObject[] };
    if (target.name === undefined && Array.isArray(read.items)) {
      return toTable(target.def, read.items, read.metadata as Record<string, unknown>, options);
    }
    return toTable(target.def, [read], { resourceVersion: read.metadata.resourceVersion }, options);
  }

  private discovery(target: DiscoveryTarget, request: IncomingMessage): unknown {
    const notFound = () => new ApiError(404, 'the server could not find the requested resource', 'NotFound');
    switch (target.root) {
      case 'api':
        return apiVersions(request.headers.host ?? '127.0.0.1');
      case 'apis':
        return apiGroupList();
      case 'version':
        return SIMULATED_VERSION;
      default:
        break;
    }
    if (target.version === undefined) {
      const group = apiGroup(target.group ?? '');
      if (!group) throw notFound();
      return group;
    }
    const list = apiResourceList(target.group ?? '', target.version);
    if (!list) throw notFound();
    return list;
  }
}
