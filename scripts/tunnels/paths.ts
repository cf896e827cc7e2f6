// Where the built pinhole lives, for scripts and tests that start it as a real process.
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** Repository root (this file runs from dist/scripts/tunnels/). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const PINHOLE_BIN = join(REPO_ROOT, 'bin', 'pinhole');
