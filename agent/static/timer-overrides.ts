// PINHOLE_WG_TIMERS="REKEY_AFTER_TIME=3000,REJECT_AFTER_TIME=9000" shortens the paper's timers
// (ms, or message counts) — for protocol tests only; never needed in production.
import { DEFAULT_TIMERS, type WireGuardTimers } from '../../proto/wireguard/constants.js';

export function timersFromEnv(value: string | undefined): Partial<WireGuardTimers> {
  if (!value) return {};
  const out: Partial<WireGuardTimers> = {};
  for (const part of value.split(',')) {
    const [name, raw] = part.split('=').map((s) => s.trim()) as [string, string | undefined];
    if (!(name in DEFAULT_TIMERS)) throw new Error(`PINHOLE_WG_TIMERS: unknown timer ${name}`);
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`PINHOLE_WG_TIMERS: bad value for ${name}: ${raw}`);
    out[name as keyof WireGuardTimers] = n;
  }
  return out;
}
