import { expect } from 'expect';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';

// `npm test` runs from the repository root; the sources, not the compiled specs, are read.
const SRC = resolve(process.cwd(), 'src');

type Graph = Map<string, Set<string>>;

/** Every .ts file under src, by its path relative to src. */
function sourceFiles(): string[] {
  return readdirSync(SRC, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.split(sep).join('/'))
    .sort();
}

/**
 * Who imports whom among the files under src: every relative import,
 * `import type` and `export … from` included, and `import()` and `require()`.
 */
function importGraph(files: string[]): Graph {
  const graph: Graph = new Map();
  for (const file of files) {
    const { importedFiles } = ts.preProcessFile(readFileSync(join(SRC, file), 'utf8'), true, true);
    const targets = new Set<string>();
    for (const { fileName } of importedFiles) {
      if (!fileName.startsWith('.')) continue;
      const base = resolve(SRC, dirname(file), fileName);
      const found = [`${base}.ts`, join(base, 'index.ts')].find((candidate) => existsSync(candidate));
      if (found) targets.add(relative(SRC, found).split(sep).join('/'));
    }
    graph.set(file, targets);
  }
  return graph;
}

/** The module a file belongs to: its top-level folder under src ('.' for the entry files). */
const moduleOf = (file: string) => (file.includes('/') ? file.slice(0, file.indexOf('/')) : '.');

function moduleGraph(files: Graph): Graph {
  const graph: Graph = new Map();
  for (const [file, targets] of files) {
    const from = moduleOf(file);
    const edges = graph.get(from) ?? new Set<string>();
    graph.set(from, edges);
    for (const target of targets) if (moduleOf(target) !== from) edges.add(moduleOf(target));
  }
  return graph;
}

/** One cycle of each strongly connected component (Tarjan), as a path that ends where it starts. */
function cycles(graph: Graph): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component = new Set<string>();
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.add(w);
    } while (w !== v);
    if (component.size > 1 || graph.get(v)?.has(v)) found.push(pathBack(graph, v, component));
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

/** A shortest path from `start` back to itself inside its component. */
function pathBack(graph: Graph, start: string, component: Set<string>): string[] {
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!component.has(w)) continue;
      if (w === start) {
        const path: string[] = [];
        for (let u = v; u !== start; u = previous.get(u)!) path.unshift(u);
        return [start, ...path, start];
      }
      if (!previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

describe('imports', () => {
  const files = importGraph(sourceFiles());
  // A spec may import what it tests together (the problem filter's spec, the errors it maps).
  const code = new Map([...files].filter(([file]) => !file.endsWith('.spec.ts')));
  const modules = moduleGraph(code);

  it('reads the sources', () => {
    expect(files.size).toBeGreaterThan(50);
    expect(modules.get('bulk-jobs')).toContain('jobs');
  });

  it('form no cycle between files, type-only imports included', () => {
    expect(cycles(files).map((cycle) => cycle.join(' → '))).toEqual([]);
  });

  it('form no cycle between the modules (the folders under src)', () => {
    expect(cycles(modules).map((cycle) => cycle.join(' → '))).toEqual([]);
  });

  it('keep database/ free of the features: it imports nothing but the configuration', () => {
    expect([...(modules.get('database') ?? [])]).toEqual(['config']);
  });

  it('finds a cycle where there is one', () => {
    const graph: Graph = new Map([
      ['a', new Set(['b'])],
      ['b', new Set(['c'])],
      ['c', new Set(['a', 'd'])],
      ['d', new Set()],
    ]);
    expect(cycles(graph)).toEqual([['a', 'b', 'c', 'a']]);
  });
});
