// Builds the web console into dist/coordinator/console/assets/ (what the coordinator serves at
// /admin/): one bundle (Preact, htm, Cytoscape and the pages, by esbuild), its stylesheet and
// index.html. Run after tsc: `npm run build:console`.
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from './tunnels/paths.js';

const web = join(REPO_ROOT, 'coordinator', 'console', 'web');
const out = join(REPO_ROOT, 'dist', 'coordinator', 'console', 'assets');

await mkdir(out, { recursive: true });
const result = await build({
  entryPoints: [join(web, 'main.js')],
  bundle: true,
  format: 'esm',
  minify: true,
  target: ['chrome110', 'firefox110', 'safari16'],
  outfile: join(out, 'app.js'),
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
});
for (const f of ['index.html', 'app.css']) await copyFile(join(web, f), join(out, f));
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
console.log(`console built: ${out} (app.js ${Math.round(bytes / 1024)} KiB)`);
