import { type Browser, chromium } from 'playwright-core';

/**
 * Debian's chromium (`apt-get install chromium`; .ci/run installs it when
 * missing), headless, driven by playwright-core: nothing is downloaded at run time.
 */
export const CHROMIUM = '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
}
