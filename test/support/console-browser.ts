// Debian's Chromium driven by playwright-core for the console's tests: launching it, catching what the page logs as
// an error, axe-core's accessibility check, and reading a Server-Sent Events stream over fetch.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
export const SKIP_CHROMIUM_REASON = `no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`;
export const chromiumPresent = () => existsSync(CHROMIUM);

/** Where screenshots go (gitignored). */
export const ARTIFACTS = path.resolve('test-artifacts', 'console');

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

/** Every console error and uncaught exception of the page, as text, from now on. */
export function pageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  return errors;
}

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

const axeSource = readFileSync(createRequire(path.resolve('package.json')).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * axe-core's serious and critical violations on the page as it is. The page's CSP refuses inline scripts, so axe is
 * evaluated through the DevTools protocol (which the page's policy does not govern) rather than added as a tag.
 */
export async function seriousAccessibilityViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(context: unknown, options: unknown): Promise<{ violations: AxeViolation[] }> } }).axe;
    return (await axe.run((globalThis as unknown as { document: unknown }).document, { resultTypes: ['violations'] })).violations;
  });
  return violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map(({ id, impact, help, nodes }) => ({ id, impact, help, nodes: nodes.map((node) => ({ target: node.target })) }));
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

export interface StreamedEvent {
  id: string | undefined;
  event: string | undefined;
  data: string;
}

/**
 * Opens a Server-Sent Events stream with fetch and reads it until `until` says enough (or the stream ends); the
 * connection is closed after. `opened` runs once the answer's headers have arrived, before anything is read.
 */
export async function readEventStream(
  url: string,
  headers: Record<string, string>,
  until: (events: StreamedEvent[]) => boolean,
  opened: () => Promise<unknown> = async () => undefined,
): Promise<{ status: number; headers: Headers; events: StreamedEvent[]; comments: string[] }> {
  const abort = new AbortController();
  const response = await fetch(url, { headers, signal: abort.signal });
  if (response.ok) await opened();
  const events: StreamedEvent[] = [];
  const comments: string[] = [];
  if (!response.ok || !response.body) {
    await response.text();
    return { status: response.status, headers: response.headers, events, comments };
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    while (!until(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = block.split('\n');
        comments.push(...fields.filter((line) => line.startsWith(':')));
        const field = (name: string) => fields.filter((line) => line.startsWith(`${name}: `)).map((line) => line.slice(name.length + 2));
        const data = field('data').join('\n');
        if (data) events.push({ id: field('id')[0], event: field('event')[0], data });
      }
    }
  } finally {
    abort.abort();
    await reader.cancel().catch(() => undefined);
  }
  return { status: response.status, headers: response.headers, events, comments };
}
