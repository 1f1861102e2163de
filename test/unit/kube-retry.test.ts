import { expect } from 'chai';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiException, KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { KubeClusterDriver } from '../../adapters/kubernetes/kube-driver.js';
import { KubeApiError, backoffDelay, describeFailure, toClusterError, withRetry, type RetryPolicy } from '../../adapters/kubernetes/retry.js';
import { ClusterError } from '../../reactors/cluster-driver.js';

const fast: RetryPolicy = { attempts: 5, baseDelayMs: 1, maxDelayMs: 5, requestTimeoutMs: 1000 };

function apiError(code: number, reason: string, message: string, headers: Record<string, string> = {}): ApiException<string> {
  return new ApiException(code, 'Unknown API Status Code!', JSON.stringify({ kind: 'Status', status: 'Failure', reason, message, code }), headers);
}

/** A call that fails with the given errors in turn, then answers `ok`. */
function failing(...errors: unknown[]) {
  let calls = 0;
  const call = async () => {
    calls += 1;
    const error = errors[calls - 1];
    if (error !== undefined) throw error;
    return 'ok';
  };
  return { call, calls: () => calls };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('Kubernetes retry policy', () => {
  describe('classifying failures', () => {
    it('given a 5xx or 429, then transient, with the Status reason and message', () => {
      expect(describeFailure(apiError(500, 'InternalError', 'etcd is slow'))).to.deep.equal({
        status: 500,
        reason: 'InternalError',
        detail: 'etcd is slow',
        transient: true,
      });
      expect(describeFailure(apiError(429, 'TooManyRequests', 'slow down', { 'Retry-After': '2' }))).to.deep.include({
        transient: true,
        retryAfterMs: 2000,
      });
    });
    it('given another 4xx, then not transient', () => {
      expect(describeFailure(apiError(422, 'Invalid', 'metadata.name: Invalid value'))).to.deep.include({ status: 422, transient: false });
      expect(describeFailure(apiError(404, 'NotFound', 'deployments.apps "x" not found'))).to.deep.include({ transient: false });
    });
    it('given a body that is not a Status, then only its status, content type and size: none of its text', () => {
      const page = '<html><body>INTERNAL-ADMIN-PAGE token=s3cr3t-value</body></html>';
      const failure = describeFailure(new ApiException(404, 'Unknown API Status Code!', page, { 'Content-Type': 'text/html; charset=utf-8' }));
      expect(failure).to.deep.equal({ status: 404, detail: `HTTP 404 (text/html, ${page.length} bytes)`, transient: false });
      // JSON that is not a Status is no better: an internal service's answer, whatever its shape.
      const json = JSON.stringify({ error: 'token=s3cr3t-value', message: 'token=s3cr3t-value' });
      expect(describeFailure(new ApiException(502, 'x', json, { 'content-type': 'application/json' }))).to.deep.equal({
        status: 502,
        detail: `HTTP 502 (application/json, ${json.length} bytes)`,
        transient: true,
      });
      // A content type is shown only when it looks like one.
      expect(describeFailure(new ApiException(500, 'x', 'x', { 'content-type': 'token=s3cr3t-value' })).detail).to.equal('HTTP 500 (no content type, 1 bytes)');
    });
    it('given a Status with no kind but apiVersion v1 and its fields, then its message, cut at 500 characters, and a reason only when it is one word', () => {
      const long = 'x'.repeat(600);
      const failure = describeFailure(new ApiException(403, 'x', JSON.stringify({ apiVersion: 'v1', status: 'Failure', reason: 'not a reason', message: long }), {}));
      expect(failure).to.deep.equal({ status: 403, detail: `${'x'.repeat(500)}…`, transient: false });
    });
    it('given a failed watch, then its HTTP status with the standard phrase, not the status line the server chose', () => {
      const refused = Object.assign(new Error('token=s3cr3t-value'), { statusCode: 404 });
      expect(describeFailure(refused)).to.deep.equal({ status: 404, detail: 'HTTP 404 Not Found', transient: false });
    });
    it('given an answer that could not be parsed, then the parse error, which quotes the answer, is not repeated', () => {
      let syntax: unknown;
      try {
        JSON.parse('<html>token=s3cr3t-value</html>');
      } catch (error) {
        syntax = error;
      }
      const invalidJson = Object.assign(new Error('invalid json response body at https://x reason: token=s3cr3t-value'), { name: 'FetchError', type: 'invalid-json' });
      for (const error of [syntax, invalidJson, new Error('The mediaType text/token=s3cr3t-value is not supported by ObjectSerializer.parse.')]) {
        expect(describeFailure(error)).to.deep.equal({ detail: 'the answer could not be read as a Kubernetes object', transient: false });
      }
    });
    it('given an ApiException, then the ClusterError does not carry it as its cause, so a log line cannot print its body', () => {
      const exception = new ApiException(404, 'x', '<html>token=s3cr3t-value</html>', { 'content-type': 'text/html' });
      const error = toClusterError('apply Deployment a/b', describeFailure(exception), false, exception);
      expect(error.message).to.equal('apply Deployment a/b: HTTP 404 (text/html, 31 bytes)');
      expect(error.cause).to.equal(undefined);
      expect(JSON.stringify(pino.stdSerializers.err(error))).not.to.include('s3cr3t');
    });
    it('given a timeout or a socket error, then transient', () => {
      const abort = Object.assign(new Error('The user aborted a request.'), { name: 'AbortError' });
      const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { name: 'FetchError', type: 'system', code: 'ECONNREFUSED' });
      expect(describeFailure(abort)).to.deep.include({ reason: 'Timeout', transient: true });
      expect(describeFailure(refused)).to.deep.include({ reason: 'NetworkError', transient: true });
    });
    it('given any other error, then not transient', () => {
      expect(describeFailure(new TypeError('boom'))).to.deep.equal({ detail: 'boom', transient: false });
    });
  });

  describe('backoff', () => {
    it('doubles from the base, with jitter in the upper half, up to the cap', () => {
      const policy = { baseDelayMs: 100, maxDelayMs: 2000 };
      expect(backoffDelay(1, policy, () => 0)).to.equal(50);
      expect(backoffDelay(1, policy, () => 1)).to.equal(100);
      expect(backoffDelay(3, policy, () => 1)).to.equal(400);
      expect(backoffDelay(10, policy, () => 1)).to.equal(2000);
      expect(backoffDelay(10, policy, () => 0)).to.equal(1000);
    });
  });

  describe('withRetry', () => {
    it('given two 500s, then the third try answers', async () => {
      const flaky = failing(apiError(500, 'InternalError', 'x'), apiError(503, 'ServiceUnavailable', 'y'));
      expect(await withRetry('read Deployment a/b', flaky.call, { policy: fast })).to.equal('ok');
      expect(flaky.calls()).to.equal(3);
    });
    it('given 5xx every time, then a transient ClusterError after the last attempt', async () => {
      const down = failing(...Array.from({ length: 10 }, () => apiError(503, 'ServiceUnavailable', 'apiserver down')));
      const error = await rejection(withRetry('read Deployment a/b', down.call, { policy: fast }));
      expect(error).to.be.instanceOf(ClusterError);
      expect(error).to.include({ status: 503, transient: true });
      expect((error as Error).message).to.match(/^read Deployment a\/b: gave up after 5 attempts; ServiceUnavailable, HTTP 503: apiserver down$/);
      expect(down.calls()).to.equal(5);
    });
    it('given a 422, then at once a ClusterError naming the object and the reason, not transient', async () => {
      const invalid = failing(apiError(422, 'Invalid', 'metadata.name: Invalid value: "Bad_Name"'));
      const error = await rejection(withRetry('apply Deployment a/Bad_Name', invalid.call, { policy: fast }));
      expect(error).to.be.instanceOf(KubeApiError);
      expect(error).to.include({ status: 422, transient: false, reason: 'Invalid' });
      expect((error as Error).message).to.equal('apply Deployment a/Bad_Name: Invalid, HTTP 422: metadata.name: Invalid value: "Bad_Name"');
      expect(invalid.calls()).to.equal(1);
    });
    it('given a 409, then it fails at once unless the call is a read-modify-write', async () => {
      const conflict = () => failing(apiError(409, 'Conflict', 'the object has been modified'));
      const once = conflict();
      expect(await rejection(withRetry('update x', once.call, { policy: fast }))).to.include({ status: 409, transient: false });
      const reread = conflict();
      expect(await withRetry('update x', reread.call, { policy: fast, conflicts: 'retry' })).to.equal('ok');
      expect(reread.calls()).to.equal(2);
    });
    it('given a 429 where the caller handles it, then it is not retried', async () => {
      const refused = failing(apiError(429, 'TooManyRequests', 'Cannot evict pod'));
      const error = await rejection(withRetry('evict pod a/b', refused.call, { policy: fast, tooManyRequests: 'fail' }));
      expect(error).to.include({ status: 429, transient: false, detail: 'Cannot evict pod' });
      expect(refused.calls()).to.equal(1);
    });
    it('given a ClusterError from inside the call, then it passes through untouched', async () => {
      const judged = new ClusterError('already judged', 400, false);
      const inner = failing(judged);
      expect(await rejection(withRetry('x', inner.call, { policy: fast }))).to.equal(judged);
    });
  });

  describe('through client-node against a server', () => {
    let server: Server;
    let handler: (req: IncomingMessage, res: ServerResponse) => void;
    let url: string;

    before(async () => {
      server = createServer((req, res) => handler(req, res));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    function driver(policy: Partial<RetryPolicy>): KubeClusterDriver {
      const config = new KubeConfig();
      // client-node refuses plain http unless TLS verification is off, and this test server has no certificate.
      config.loadFromOptions({
        clusters: [{ name: 'test', server: url, skipTLSVerify: true }],
        users: [{ name: 'test', token: 'secret-token' }],
        contexts: [{ name: 'test', cluster: 'test', user: 'test' }],
        currentContext: 'test',
      });
      return new KubeClusterDriver(config, { logger: pino({ level: 'silent' }), retry: { ...fast, ...policy } });
    }

    it('given two 500s, then the request succeeds on the third try, with the bearer token', async () => {
      const seen: string[] = [];
      handler = (req, res) => {
        seen.push(`${req.method} ${req.url} ${req.headers['content-type']} ${req.headers.authorization}`);
        res.setHeader('content-type', 'application/json');
        if (seen.length <= 2) {
          res.statusCode = 500;
          res.end(JSON.stringify({ kind: 'Status', status: 'Failure', reason: 'InternalError', message: 'try later', code: 500 }));
        } else {
          res.end(JSON.stringify({ kind: 'Node', apiVersion: 'v1', metadata: { name: 'n1' }, spec: { unschedulable: true } }));
        }
      };
      await driver({}).cordon('n1');
      expect(seen).to.have.length(3);
      expect(seen[2]).to.equal('PATCH /api/v1/nodes/n1?fieldManager=sentinel application/strategic-merge-patch+json Bearer secret-token');
    });

    it('given a server that never answers, then each request is abandoned at the timeout and the error is transient', async () => {
      let requests = 0;
      handler = () => {
        requests += 1;
      };
      const error = await rejection(driver({ attempts: 2, requestTimeoutMs: 100 }).cordon('n1'));
      expect(error).to.be.instanceOf(ClusterError);
      expect(error).to.include({ transient: true, reason: 'Timeout' });
      expect((error as Error).message).to.match(/^cordon node n1: gave up after 2 attempts/);
      expect(requests).to.equal(2);
    });

    it('given a refused connection, then a transient ClusterError', async () => {
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const port = (closed.address() as AddressInfo).port;
      await new Promise((resolve) => closed.close(resolve));
      const config = new KubeConfig();
      config.loadFromOptions({
        clusters: [{ name: 'gone', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
        users: [{ name: 'u' }],
        contexts: [{ name: 'c', cluster: 'gone', user: 'u' }],
        currentContext: 'c',
      });
      const gone = new KubeClusterDriver(config, { logger: pino({ level: 'silent' }), retry: { ...fast, attempts: 2 } });
      const error = await rejection(gone.read({ kind: 'Deployment', namespace: 'a', name: 'b' }));
      expect(error).to.include({ transient: true, reason: 'NetworkError' });
    });

    it('given an HTML page where the API server should be, then an error that gives its size and type, never its text', async () => {
      const page = '<html><body>INTERNAL-ADMIN-PAGE token=s3cr3t-value</body></html>';
      handler = (_req, res) => {
        res.statusCode = 404;
        res.setHeader('content-type', 'text/html');
        res.end(page);
      };
      const error = await rejection(driver({}).cordon('n1'));
      expect(error).to.be.instanceOf(KubeApiError).and.include({ status: 404, transient: false });
      expect((error as Error).message).to.equal(`cordon node n1: HTTP 404 (text/html, ${page.length} bytes)`);
      expect(JSON.stringify(pino.stdSerializers.err(error as Error))).not.to.include('s3cr3t');
    });

    it('given a 404 on read, then undefined; on delete, success', async () => {
      handler = (_req, res) => {
        res.statusCode = 404;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ kind: 'Status', status: 'Failure', reason: 'NotFound', message: 'not found', code: 404 }));
      };
      const d = driver({});
      expect(await d.read({ kind: 'Job', namespace: 'a', name: 'b' })).to.equal(undefined);
      await d.delete({ kind: 'StatefulSet', namespace: 'a', name: 'b' });
    });
  });
});
