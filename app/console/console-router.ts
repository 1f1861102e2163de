// The console: one HTML shell for every page path, and its script and stylesheet under content-hashed names.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';

/**
 * The console's own policy, set on its answers after the server's JSON policy (the later header wins): scripts,
 * styles and requests only from this origin, nothing inline, never framed. Data is shown with textContent, so no
 * markup from the API can run even if it tried.
 */
export const CONSOLE_CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** The paths that answer the shell; the script reads the path (and query) and renders that page. */
export const CONSOLE_PAGES = ['/', '/login', '/deployments', '/deployments/:id', '/plans', '/plans/:id', '/decisions', '/timeline', '/audit', '/operations'] as const;

const ASSETS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'assets');

interface Asset {
  /** `/assets/console.<hash>.js`: a new build of the file is a new name, so the old one may be cached for ever. */
  path: string;
  type: string;
  body: Buffer;
}

function asset(file: string, type: string): Asset {
  const body = readFileSync(path.join(ASSETS, file));
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 16);
  const { name, ext } = path.parse(file);
  return { path: `/assets/${name}.${hash}${ext}`, type, body };
}

export interface ConsoleAssets {
  script: string;
  stylesheet: string;
}

/** The router to mount at `/` in the api role. The assets are read and hashed once, here. */
export function consoleRouter(): Router & { assets: ConsoleAssets } {
  const script = asset('console.js', 'text/javascript; charset=utf-8');
  const stylesheet = asset('console.css', 'text/css; charset=utf-8');
  const shell = Buffer.from(shellHtml(script.path, stylesheet.path));
  const router = express.Router({ strict: false }) as Router & { assets: ConsoleAssets };
  router.assets = { script: script.path, stylesheet: stylesheet.path };

  const consolePolicy = (_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Content-Security-Policy', CONSOLE_CONTENT_SECURITY_POLICY);
    next();
  };

  router.get([...CONSOLE_PAGES], consolePolicy, (_req, res) => {
    // The shell holds no data and no token; it is revalidated each time so a new build's asset names are picked up.
    res.setHeader('Cache-Control', 'no-cache');
    res.type('text/html; charset=utf-8').send(shell);
  });
  for (const { path: assetPath, type, body } of [script, stylesheet]) {
    const etag = `"${assetPath.split('.').at(-2)}"`;
    router.get(assetPath, consolePolicy, (_req, res) => {
      res.setHeader('Cache-Control', 'public, max-age=31536000, immutable');
      res.setHeader('ETag', etag);
      res.type(type).send(body);
    });
  }
  return router;
}

function shellHtml(script: string, stylesheet: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sentinel</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${stylesheet}">
<script type="module" src="${script}"></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="bar">
<span class="brand">Sentinel</span>
<nav aria-label="Pages" id="nav" hidden>
<a href="/">Fleet</a>
<a href="/deployments">Deployments</a>
<a href="/plans">Action plans</a>
<a href="/decisions">Policy decisions</a>
<a href="/audit">Audit trail</a>
<a href="/operations">Projections and reactors</a>
</nav>
<span id="live" class="live" role="status" aria-live="polite"></span>
<button type="button" id="logout" hidden>Sign out</button>
</header>
<main id="main" tabindex="-1"><p>Loading…</p></main>
</body>
</html>
`;
}
