// The HTTP server of a Sentinel process: probes, metrics, and whatever routers the composition root mounts.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import http from 'node:http';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { sendProblem } from './problem.js';

export interface HttpServerOptions {
  logger: Logger;
  metrics: Registry;
  /** Resolves when the process can serve traffic; rejects with the reason when it cannot. */
  readiness: () => Promise<void>;
  readinessTimeoutMs?: number;
  routers?: { path: string; router: Router }[];
}

export function createHttpApp(options: HttpServerOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', async (_req, res) => {
    try {
      await withTimeout(options.readiness(), options.readinessTimeoutMs ?? 2000, 'readiness check timed out');
      res.json({ status: 'ready' });
    } catch (error) {
      sendProblem(res, { title: 'Not ready', status: 503, detail: (error as Error).message });
    }
  });

  app.get('/metrics', async (_req, res) => {
    res.type(options.metrics.contentType).send(await options.metrics.metrics());
  });

  for (const { path, router } of options.routers ?? []) app.use(path, router);

  app.use((req: Request, res: Response) => {
    sendProblem(res, { title: 'Not Found', status: 404, detail: `no route for ${req.method} ${req.path}` });
  });

  app.use((error: Error, req: Request, res: Response, _next: NextFunction) => {
    options.logger.error({ err: error, method: req.method, path: req.path }, 'request failed');
    if (res.headersSent) return;
    sendProblem(res, { title: 'Internal Server Error', status: 500, detail: 'the request failed; see the server log' });
  });

  return app;
}

export interface RunningHttpServer {
  port: number;
  /** Stops accepting connections and waits for in-flight requests, up to `timeoutMs`. */
  close(timeoutMs: number): Promise<void>;
}

export async function listen(app: express.Express, host: string, port: number): Promise<RunningHttpServer> {
  const server = http.createServer(app);
  server.listen(port, host);
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    async close(timeoutMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
      await closed;
      clearTimeout(timer);
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
