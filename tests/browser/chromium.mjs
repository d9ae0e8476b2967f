// Debian's Chromium (/usr/bin/chromium, or CHROMIUM_BIN), headless, driven by
// playwright-core; never a downloaded browser.
import { chromium } from 'playwright-core';

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
