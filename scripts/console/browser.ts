// Headless Debian Chromium for the console's tests and benchmark (playwright-core, no browser
// download). `netns`: run it inside a lab namespace (through `ip netns exec`), so it reaches lab
// addresses. Playwright gives it a fresh profile directory each launch.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function launchChromium(opts: { netns?: string } = {}): Promise<Browser> {
  const dir = await mkdtemp(join(tmpdir(), 'pinhole-chromium-'));
  let executablePath = CHROMIUM;
  if (opts.netns) {
    executablePath = join(dir, 'chromium-in-netns');
    await writeFile(executablePath, `#!/bin/sh\nexec ip netns exec ${opts.netns} ${CHROMIUM} "$@"\n`);
    await chmod(executablePath, 0o700);
  }
  try {
    const browser = await chromium.launch({ executablePath, args: FLAGS, timeout: 30_000 });
    browser.on('disconnected', () => { void rm(dir, { recursive: true, force: true }); });
    return browser;
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
