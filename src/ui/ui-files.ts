import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { gzipSync } from 'node:zlib';

/** Where `npm run build` puts the built dashboard: beside this module's compiled file. */
export const UI_STATIC_DIR = join(__dirname, 'static');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
};

/** Anything smaller goes uncompressed: gzip's framing would outweigh the gain. */
const GZIP_MIN_BYTES = 512;

/** One file as it is served: its bytes (and their gzip), type and validator. */
export interface UiFile {
  body: Buffer;
  gzip: Buffer | undefined;
  contentType: string;
  etag: string;
}

/** The placeholder in index.html that tells the page whether development tokens are on offer. */
const DEV_TOKENS_META = '<meta name="bulk-jobs-dev-tokens" content="off" />';

/**
 * The built dashboard, read once at start-up: index.html and the hashed files
 * under assets/ (a few dozen kB), kept in memory with their gzip so that a
 * request costs no disk read and no compression.
 */
export class UiFiles {
  readonly index: UiFile | undefined;
  private readonly assets = new Map<string, UiFile>();

  constructor(dir: string, options: { devTokens: boolean }) {
    const indexPath = join(dir, 'index.html');
    if (!existsSync(indexPath)) return;
    let html = readFileSync(indexPath, 'utf8');
    if (options.devTokens) html = html.replace(DEV_TOKENS_META, DEV_TOKENS_META.replace('off', 'on'));
    this.index = uiFile(Buffer.from(html), '.html');
    const assets = join(dir, 'assets');
    if (!existsSync(assets)) return;
    for (const name of readdirSync(assets)) {
      const type = extname(name);
      if (CONTENT_TYPES[type]) this.assets.set(name, uiFile(readFileSync(join(assets, name)), type));
    }
  }

  get built(): boolean {
    return this.index !== undefined;
  }

  /** A file under assets/ by its (hashed) name. */
  asset(name: string): UiFile | undefined {
    return this.assets.get(name);
  }
}

function uiFile(body: Buffer, type: string): UiFile {
  const compressible = type !== '.png' && type !== '.ico';
  const gzip = compressible && body.length >= GZIP_MIN_BYTES ? gzipSync(body, { level: 9 }) : undefined;
  return {
    body,
    gzip: gzip && gzip.length < body.length ? gzip : undefined,
    contentType: CONTENT_TYPES[type],
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
  };
}
