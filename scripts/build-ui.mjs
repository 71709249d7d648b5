#!/usr/bin/env node
// Builds the dashboard (ui/) into static files that the API serves at /ui:
// index.html and hashed assets (assets/main-<hash>.js, .css). Part of `npm run build`;
// the test command builds it into its own folder.
//
//   node scripts/build-ui.mjs [--outdir=dist/ui/static]
import { build } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';

const ROOT = resolve(import.meta.dirname, '..');
const outdir = resolve(
  ROOT,
  process.argv.find((a) => a.startsWith('--outdir='))?.slice('--outdir='.length) ?? 'dist/ui/static',
);
const quiet = process.argv.includes('--quiet');

rmSync(outdir, { recursive: true, force: true });
mkdirSync(join(outdir, 'assets'), { recursive: true });

const result = await build({
  absWorkingDir: ROOT,
  entryPoints: ['ui/src/main.tsx'],
  bundle: true,
  minify: true,
  format: 'esm',
  // What the dashboard needs (fetch streams, TextDecoderStream) is in every browser of the last two years.
  target: ['chrome111', 'firefox111', 'safari16.4'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: join(outdir, 'assets'),
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'eof',
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs).map((file) => resolve(ROOT, file));
const script = outputs.find((f) => f.endsWith('.js'));
const style = outputs.find((f) => f.endsWith('.css'));
if (!script || !style) throw new Error('the build made no script or no stylesheet');
const tags = [
  `<link rel="stylesheet" href="/ui/assets/${basename(style)}" />`,
  `<script type="module" src="/ui/assets/${basename(script)}"></script>`,
].join('\n    ');
const template = readFileSync(join(ROOT, 'ui/index.html'), 'utf8');
if (!template.includes('<!-- assets -->'))
  throw new Error('ui/index.html has no <!-- assets --> placeholder');
writeFileSync(join(outdir, 'index.html'), template.replace('<!-- assets -->', tags));

if (!quiet) {
  let raw = 0;
  let gzipped = 0;
  for (const file of [join(outdir, 'index.html'), ...outputs]) {
    const body = readFileSync(file);
    const gz = gzipSync(body, { level: 9 }).length;
    raw += body.length;
    gzipped += gz;
    console.log(
      `ui: ${relative(ROOT, file)}  ${(body.length / 1024).toFixed(1)} kB, ${(gz / 1024).toFixed(1)} kB gzipped`,
    );
  }
  console.log(`ui: ${(raw / 1024).toFixed(1)} kB in all, ${(gzipped / 1024).toFixed(1)} kB gzipped`);
}
