#!/usr/bin/env node
// Import checks of src/, run by `npm test` before the suite: (1) no import cycle between files, (2) none between
// folders (a feature folder, or a subfolder of infra/ and integrations/), type-only imports counted, since they tie
// folders together just the same; (3) product code (src/ without *.spec.ts) imports neither vitest nor test/.
// Prints what it found; exits 1 on any finding, except folder cycles under --warn-folder-cycles (reported only).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');
const TEST = join(ROOT, 'test');
const warnFolderCycles = process.argv.includes('--warn-folder-cycles');

const rel = (file) => relative(ROOT, file).split(sep).join('/');
const isSpec = (file) => file.endsWith('.spec.ts');

function sourceFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Every module specifier of a file (imports, re-exports, dynamic imports), and whether each is type-only. */
function importsOf(file) {
  const text = readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found = [];
  const visit = (node) => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      const typeOnly = ts.isImportDeclaration(node) ? Boolean(node.importClause?.isTypeOnly) : node.isTypeOnly;
      found.push({ specifier: node.moduleSpecifier.text, typeOnly });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteral(arg)) found.push({ specifier: arg.text, typeOnly: false });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** `./x.js` → the `./x.ts` beside the importer (NodeNext spelling); null for packages and node: builtins. */
function resolveLocal(importer, specifier) {
  if (!specifier.startsWith('.')) return null;
  return resolve(dirname(importer), specifier.replace(/\.js$/, '.ts'));
}

const files = sourceFiles(SRC).sort();
const known = new Set(files);
/** file → [{ to, typeOnly }] within src/ */
const graph = new Map();
const forbidden = [];
for (const file of files) {
  const edges = [];
  for (const { specifier, typeOnly } of importsOf(file)) {
    const target = resolveLocal(file, specifier);
    if (!isSpec(file) && (specifier === 'vitest' || specifier.startsWith('vitest/') || target?.startsWith(TEST + sep))) {
      forbidden.push(`${rel(file)} imports ${specifier}`);
    }
    if (target && known.has(target)) edges.push({ to: target, typeOnly });
  }
  graph.set(file, edges);
}

/** Tarjan's strongly connected components: every cycle lies inside one component of two or more nodes. */
function cyclicComponents(graph) {
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const components = [];
  let counter = 0;
  const connect = (v) => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const { to } of graph.get(v)) {
      if (!index.has(to)) {
        connect(to);
        low.set(v, Math.min(low.get(v), low.get(to)));
      } else if (onStack.has(to)) {
        low.set(v, Math.min(low.get(v), index.get(to)));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || graph.get(v).some((e) => e.to === v)) components.push(component.sort());
  };
  for (const node of graph.keys()) if (!index.has(node)) connect(node);
  return components;
}

/** The shortest cycle through `start` inside its component (breadth-first), as a list of edges. */
function shortestCycle(graph, start, members) {
  const inside = new Set(members);
  const previous = new Map();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const edge of graph.get(v)) {
      if (!inside.has(edge.to)) continue;
      if (edge.to === start) {
        const path = [{ from: v, ...edge }];
        for (let at = v; at !== start; ) {
          const step = previous.get(at);
          path.unshift(step);
          at = step.from;
        }
        return path;
      }
      if (!previous.has(edge.to)) {
        previous.set(edge.to, { from: v, ...edge });
        queue.push(edge.to);
      }
    }
  }
  return [];
}

/** The folder that owns a file: the first level under src/ (`integrations/` and `infra/` count per subfolder). */
function folderOf(file) {
  const parts = relative(SRC, file).split(sep);
  if (parts.length === 1) return rel(file); // entry and composition root: each file on its own
  return ['integrations', 'infra'].includes(parts[0]) && parts.length > 2 ? `${parts[0]}/${parts[1]}` : parts[0];
}
/** folder → [{ to, typeOnly, via }]: one edge per folder pair, naming one file import that makes it. */
const folders = new Map();
for (const [file, edges] of graph) {
  // Folder boundaries are about the product: a unit test may use a neighbour's test double (src/demo/simulated).
  if (isSpec(file)) continue;
  const from = folderOf(file);
  if (!folders.has(from)) folders.set(from, []);
  for (const edge of edges) {
    const to = folderOf(edge.to);
    if (to === from) continue;
    const list = folders.get(from);
    const existing = list.find((e) => e.to === to);
    if (!existing) list.push({ to, typeOnly: edge.typeOnly, via: `${rel(file)} → ${rel(edge.to)}` });
    else if (existing.typeOnly && !edge.typeOnly) Object.assign(existing, { typeOnly: false, via: `${rel(file)} → ${rel(edge.to)}` });
  }
}
for (const edges of folders.values()) for (const edge of edges) if (!folders.has(edge.to)) folders.set(edge.to, []);

let failed = false;
/** Prints the cycles of one graph; returns whether there was any. */
function report(what, graph, name, fatal) {
  const components = cyclicComponents(graph);
  if (components.length === 0) {
    console.log(`✔ ${what}: none (${graph.size} checked)`);
    return;
  }
  console.log(
    `${fatal ? '✖' : '⚠'} ${what}: ${components.length} group(s) that import each other${fatal ? '' : ' (reported, not fatal yet)'}`,
  );
  const line = (edge) =>
    `    ${name(edge.from)} → ${name(edge.to)}${edge.typeOnly ? ' (type only)' : ''}${edge.via ? ` via ${edge.via}` : ''}`;
  for (const members of components) {
    console.log(`  ${members.map(name).join(', ')}`);
    console.log(`   e.g. the cycle:`);
    for (const edge of shortestCycle(graph, members[0], members)) console.log(line(edge));
    if (members.length > 2) {
      const inside = new Set(members);
      console.log(`   every import inside the group:`);
      for (const from of members) for (const edge of graph.get(from)) if (inside.has(edge.to)) console.log(line({ from, ...edge }));
    }
  }
  if (fatal) failed = true;
}
report('import cycles between files in src/', graph, rel, true);
report('import cycles between folders of src/', folders, (f) => f, !warnFolderCycles);

if (forbidden.length === 0) {
  console.log('✔ product code imports neither vitest nor test/');
} else {
  console.log(`✖ product code must not import test code (move it to test/, or the helper into src/):`);
  for (const line of forbidden) console.log(`  ${line}`);
  failed = true;
}
process.exit(failed ? 1 : 0);
