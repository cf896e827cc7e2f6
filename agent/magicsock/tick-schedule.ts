// When the magic socket looks at its peers next. While a peer is active (traffic in the last
// ACTIVE_MS) or a disco ping awaits its pong, every TICK_MS: heartbeats, probes and pong timeouts
// need it. With every peer idle nothing is due but the moment a direct path's trust runs out (the
// peer then moves to the relay, where the next packet wakes us) and a slow look at the WireGuard
// counters for traffic that arrived on the native path. An idle agent wakes every IDLE_POLL_MS,
// not four times a second. Traffic through JS (relay, disco, pings) marks the peer active and
// wakes the socket at once.

export const TICK_MS = 250;
export const IDLE_POLL_MS = 10_000;

/**
 * The wait before the next tick: TICK_MS when busy, else until the earliest direct-path trust
 * expiry (msUntilTrustExpiry, Infinity when no peer has a direct path), at most IDLE_POLL_MS.
 */
export function nextTickDelay(busy: boolean, msUntilTrustExpiry: number): number {
  if (busy) return TICK_MS;
  return Math.max(TICK_MS, Math.min(IDLE_POLL_MS, Math.ceil(msUntilTrustExpiry)));
}
