// Durations as people type them on a command line: "90s", "5m", "1h30m", "180d", "250ms".
// Shared by the coordinator's flags and the admin CLI (`authkey create --expiry 30d`).
import { DecodeError } from '../errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+)(ms|s|m|h|d)/y;

/** Milliseconds in a duration like "1h30m"; DecodeError on anything else (a bare number included). */
export function parseDuration(text: string): number {
  if (typeof text !== 'string' || text.length === 0 || text.length > 32) {
    throw new DecodeError('bad-syntax', `not a duration: ${JSON.stringify(String(text).slice(0, 32))} (use e.g. 90s, 5m, 12h, 180d)`);
  }
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const at = PART.lastIndex;
    const m = PART.exec(text);
    if (!m || m.index !== at) {
      throw new DecodeError('bad-syntax', `not a duration: ${JSON.stringify(text)} (use e.g. 90s, 5m, 12h, 180d)`);
    }
    total += Number(m[1]) * UNIT_MS[m[2] as string]!;
  }
  if (!Number.isSafeInteger(total)) throw new DecodeError('bad-value', `duration too long: ${text}`);
  return total;
}

/** "1h30m" style text for a duration in milliseconds (largest units first, zero parts left out). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const unit of ['d', 'h', 'm', 's', 'ms']) {
    const size = UNIT_MS[unit]!;
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
