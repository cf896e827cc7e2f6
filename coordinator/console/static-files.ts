// The console's built files (index.html, app.js, app.css: `npm run build:console` writes them next
// to this module, under assets/), read once at start and served from memory. Nothing is fetched
// at run time and nothing outside this fixed list is ever served.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const ASSETS_DIR = fileURLToPath(new URL('./assets/', import.meta.url));

const TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

export interface StaticFile { type: string; body: Buffer }

/** The files by name, or null if the console was not built (the coordinator then answers 503). */
export function loadConsoleAssets(dir = ASSETS_DIR): Map<string, StaticFile> | null {
  const out = new Map<string, StaticFile>();
  try {
    for (const [name, type] of Object.entries(TYPES)) out.set(name, { type, body: readFileSync(join(dir, name)) });
  } catch {
    return null;
  }
  return out;
}
