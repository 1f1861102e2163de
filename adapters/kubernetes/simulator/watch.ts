// Watches: newline-delimited JSON events over a chunked response, resumable from a resourceVersion within the kept
// history (410 Expired beyond it), with bookmarks and timeouts, and a way to cut every open watch at once.
import type { ServerResponse } from 'node:http';
import { ApiError, badRequest } from './api-error.js';
import type { Registry } from './registry.js';
import { apiVersionOf, resourceKey } from './resources.js';
import type { ResourceTarget } from './routes.js';
import { HistoryExpired, type Change } from './store.js';
import type { KubeObject } from './types.js';

interface OpenWatch {
  response: ServerResponse;
  stop(): void;
}

export interface WatchOptions {
  bookmarkIntervalMs: number;
}

export class WatchHub {
  private readonly open = new Set<OpenWatch>();

  constructor(
    private readonly registry: Registry,
    private readonly options: WatchOptions,
  ) {}

  /**
   * Starts a watch on `response`. Errors in the request (a bad selector) throw before anything is written.
   * `transform` turns each object sent in ADDED, MODIFIED and DELETED into what the client asked for (a Table row).
   */
  serve(
    target: ResourceTarget,
    query: URLSearchParams,
    accepts: (object: KubeObject) => boolean,
    response: ServerResponse,
    transform: (object: KubeObject) => unknown = (object) => object,
  ): void {
    const { def } = target;
    const resource = resourceKey(def);
    const store = this.registry.store;
    const filter = target.name === undefined ? accepts : (o: KubeObject) => accepts(o) && o.metadata.name === target.name;
    const requested = query.get('resourceVersion') ?? '';
    const bookmarks = query.get('allowWatchBookmarks') === 'true';
    const timeoutSeconds = query.get('timeoutSeconds');
    if (requested !== '' && !/^\d+$/.test(requested)) throw badRequest(`resourceVersion: Invalid value: "${requested}": must be an unsigned integer`);
    if (timeoutSeconds !== null && !/^\d+$/.test(timeoutSeconds)) throw badRequest(`timeoutSeconds: Invalid value: "${timeoutSeconds}": must be an unsigned integer`);

    let backlog: Change[] | undefined;
    let expired: HistoryExpired | undefined;
    if (requested !== '' && requested !== '0') {
      try {
        backlog = store.changesSince(Number(requested));
      } catch (error) {
        if (!(error instanceof HistoryExpired)) throw error;
        expired = error;
      }
    }

    response.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    response.flushHeaders();
    const write = (type: string, object: unknown) => {
      if (!response.writableEnded && !response.destroyed) response.write(`${JSON.stringify({ type, object })}\n`);
    };
    const send = (type: string, object: KubeObject) => write(type, transform(object));

    if (expired) {
      // What a real API server does for a resourceVersion its watch cache no longer reaches: 200, one ERROR, the end.
      write('ERROR', new ApiError(410, expired.message, 'Expired').toStatus());
      response.end();
      return;
    }

    const deliver = (change: Change) => {
      if (change.resource !== resource) return;
      const now = filter(change.object);
      const before = change.previous !== undefined && filter(change.previous);
      if (change.type === 'ADDED') {
        if (now) send('ADDED', change.object);
      } else if (change.type === 'DELETED') {
        if (now || before) send('DELETED', change.object);
      } else if (now && before) {
        send('MODIFIED', change.object);
      } else if (now) {
        send('ADDED', change.object);
      } else if (before) {
        // Leaving the selection reads as a deletion, of the last state that matched, at the new resourceVersion.
        const last = structuredClone(change.previous!);
        last.metadata.resourceVersion = change.object.metadata.resourceVersion;
        send('DELETED', last);
      }
    };

    if (backlog) {
      for (const change of backlog) deliver(change);
    } else {
      for (const object of this.registry.list(def, target.namespace).filter(filter)) send('ADDED', object);
      if (bookmarks && query.get('sendInitialEvents') === 'true') {
        write('BOOKMARK', this.bookmark(target, { 'k8s.io/initial-events-end': 'true' }));
      }
    }
    const unsubscribe = store.subscribe(deliver);
    const timers: NodeJS.Timeout[] = [];
    if (bookmarks) timers.push(setInterval(() => write('BOOKMARK', this.bookmark(target)), this.options.bookmarkIntervalMs));
    if (timeoutSeconds !== null) timers.push(setTimeout(() => response.end(), Number(timeoutSeconds) * 1000));

    const watch: OpenWatch = {
      response,
      stop: () => {
        unsubscribe();
        for (const timer of timers) clearTimeout(timer);
        this.open.delete(watch);
      },
    };
    this.open.add(watch);
    response.on('close', watch.stop);
  }

  /** A BOOKMARK carries only the resourceVersion the watch has reached (and the initial-events marker when asked). */
  private bookmark(target: ResourceTarget, annotations?: Record<string, string>): Record<string, unknown> {
    return {
      kind: target.def.kind,
      apiVersion: apiVersionOf(target.def),
      metadata: { resourceVersion: String(this.registry.store.currentRevision()), ...(annotations ? { annotations } : {}) },
    };
  }

  /** Cuts every open watch's connection without ending the response, as a failing network or server would. */
  dropAll(): void {
    for (const watch of [...this.open]) {
      watch.stop();
      watch.response.socket?.destroy();
      watch.response.destroy();
    }
  }

  /** Ends every open watch cleanly (the server is closing). */
  endAll(): void {
    for (const watch of [...this.open]) {
      watch.stop();
      watch.response.end();
    }
  }

  get size(): number {
    return this.open.size;
  }
}
