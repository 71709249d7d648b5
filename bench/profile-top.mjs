#!/usr/bin/env node
// Where a .cpuprofile (from --cpu-prof) spends its time: the functions with the most
// self time, self time by package, and, with --inclusive=a,b, the time under
// functions whose name matches.
//   node bench/profile-top.mjs bench/results/api-….cpuprofile [count] [--inclusive=canActivate,query]
import { readFileSync } from 'node:fs';
import process from 'node:process';

const args = process.argv.slice(2);
const inclusive =
  args
    .find((a) => a.startsWith('--inclusive='))
    ?.slice(12)
    .split(',') ?? [];
const [file, count = '30'] = args.filter((a) => !a.startsWith('--'));
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const keyOf = (node) => {
  const f = node.callFrame;
  const where = f.url.replace(/^.*node_modules\//, '~/').replace(/^.*\/(src|\.bench-build)\//, '');
  return `${f.functionName || '(anonymous)'} ${where}:${f.lineNumber + 1}`;
};
const self = new Map();
const under = new Map();
let busy = 0;
const deltas = profile.timeDeltas;
for (let i = 0; i < profile.samples.length; i++) {
  const node = byId.get(profile.samples[i]);
  const dt = deltas[i] ?? 0;
  const key = keyOf(node);
  self.set(key, (self.get(key) ?? 0) + dt);
  if (!key.startsWith('(idle)')) busy += dt;
  const seen = new Set();
  for (let id = node.id; id !== undefined; id = parent.get(id)) {
    const name = byId.get(id).callFrame.functionName;
    for (const pattern of inclusive) {
      if (name.includes(pattern) && !seen.has(pattern)) {
        seen.add(pattern);
        under.set(pattern, (under.get(pattern) ?? 0) + dt);
      }
    }
  }
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const pct = (v, of = total) => `${((100 * v) / of).toFixed(1).padStart(5)}%`;
console.log(`total ${(total / 1e6).toFixed(2)} s, busy ${(busy / 1e6).toFixed(2)} s (${pct(busy).trim()})`);
for (const [k, v] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(count)))
  console.log(`${pct(v)}  ${k}`);

// Self time by package (node_modules/<pkg>), service source, or Node internals; as a share of busy time.
const byPkg = new Map();
for (const [k, v] of self) {
  if (k.startsWith('(idle)')) continue;
  const m = /~\/(@[^/]+\/[^/]+|[^/ ]+)\//.exec(k);
  const group = k.startsWith('(')
    ? k.split(' ')[0]
    : m
      ? m[1]
      : / node:/.test(k)
        ? 'node internals'
        : /\.js:/.test(k)
          ? 'service code'
          : 'native';
  byPkg.set(group, (byPkg.get(group) ?? 0) + v);
}
console.log('\nself time by package, % of busy:');
for (const [k, v] of [...byPkg.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25))
  console.log(`${pct(v, busy)}  ${k}`);
if (inclusive.length) {
  console.log('\ntime under, % of busy:');
  for (const p of inclusive) console.log(`${pct(under.get(p) ?? 0, busy)}  ${p}`);
}
