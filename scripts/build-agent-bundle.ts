// Bundles the agent (dist/agent/cli/main.js and everything it imports, libraries included) into
// dist/bundle/: one minified entry, agent.js, plus one chunk per lazily imported part (the UPnP XML
// parser, the metrics endpoint, each mode of the daemon) so those still load only when used.
// bin/pinhole runs it instead of dist/agent/ when it is at least as new as dist/agent/cli/main.js.
// Why: an agent daemon that loads ~275 modules keeps their source text and module records on its
// heap for months; one minified, tree-shaken file costs a fraction of that (docs/protocol.md,
// "At idle: timers and memory"). Run after tsc: `npm run build:bundle`.
import { build, type Plugin } from 'esbuild';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from './tunnels/paths.js';

const out = join(REPO_ROOT, 'dist', 'bundle');
const EXTERNAL = ['sodium-native'];

/**
 * Loads the external packages with require(), not `import`: node answers an ES import of a
 * CommonJS package by scanning its source for export names (cjs-module-lexer). On sodium-native's
 * 105 KB index.js that scan was the hottest code of the agent's start-up: V8 compiled the lexer
 * with TurboFan, whose code and memory an idle agent then held (about 3 MB of RSS; docs/protocol.md,
 * "At idle: timers and memory").
 */
const requireExternals: Plugin = {
  name: 'require-externals',
  setup(b) {
    const filter = new RegExp(`^(${EXTERNAL.join('|')})$`);
    b.onResolve({ filter }, (args) =>
      args.namespace === 'require-external' ? { path: args.path, external: true } : { path: args.path, namespace: 'require-external' });
    b.onLoad({ filter: /.*/, namespace: 'require-external' }, (args) =>
      ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: 'js' }));
  },
};

await rm(out, { recursive: true, force: true });
const result = await build({
  entryPoints: { agent: join(REPO_ROOT, 'dist', 'agent', 'cli', 'main.js') },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  // No esbuild name helper: keeping every function's name ran a call per function at load and held
  // 0.85 MB more at idle (bench-idle, 10 peers: 57.4-57.5 vs 58.2-58.4 MB). Logs name errors by
  // err.name (agent/log.ts), which every error class of ours sets.
  keepNames: false,
  // Loads its prebuilt libsodium by path at run time. The agent daemon does not load it at all
  // (proto/sodium.ts, agent/tun/addon-sodium.ts); its CLI may, through proto/sodium.ts's require.
  external: EXTERNAL,
  plugins: [requireExternals],
  // Libraries written as CommonJS call require() for node's own modules; an ES module has none.
  banner: { js: "import { createRequire as __pinholeRequire } from 'node:module'; const require = __pinholeRequire(import.meta.url);" },
  outdir: out,
  legalComments: 'none',
  sourcemap: 'linked',
  logLevel: 'warning',
  metafile: true,
});
const outputs = Object.entries(result.metafile.outputs).filter(([f]) => f.endsWith('.js'));
const bytes = outputs.reduce((n, [, o]) => n + o.bytes, 0);
console.log(`agent bundled: ${out} (${outputs.length} files, ${Math.round(bytes / 1024)} KiB)`);
