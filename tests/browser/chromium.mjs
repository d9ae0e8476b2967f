// Debian's Chromium (/usr/bin/chromium, or CHROMIUM_BIN), headless, driven by
// playwright-core; never a downloaded browser.
import { createServer } from 'node:http';
import { join } from 'node:path';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { freePort, ROOT } from '../e2e/harness.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

/** Launches the browser the browser tests share. */
export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}

/** Serves a page on its own local origin that runs `entry` (a path under the repo),
 * bundled for the browser with esbuild. Returns { url, close() }. */
export async function servePage(entry, title) {
  const bundle = await build({
    entryPoints: [join(ROOT, entry)],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'error',
  });
  const js = bundle.outputFiles[0].text;
  const html = `<!doctype html><meta charset="utf-8"><title>${title}</title>`
    + '<div id="root"></div><script type="module" src="/app.js"></script>';
  const site = createServer((req, res) => {
    const isJs = req.url.startsWith('/app.js');
    res.writeHead(200, { 'content-type': isJs ? 'text/javascript' : 'text/html' });
    res.end(isJs ? js : html);
  });
  const port = await freePort();
  await new Promise((r) => site.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}`, close: () => site.close() };
}
