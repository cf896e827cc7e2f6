// The live mesh as pairs: both sides' reports of each pair of nodes that talked recently, and the
// path the pair uses (relayed if either side relays, direct if a side is direct and none relays).

/** A pair whose both sides were idle longer than this is not drawn. */
export const RECENT_SECONDS = 300;

export const PATH_COLOURS = { direct: '#2e9d4f', relay: '#e08a1e', none: '#9aa0a6' };

export function meshPairs(live) {
  const pairs = new Map();
  for (const np of live.mesh.values()) {
    if (!live.nodes.has(np.nodeId)) continue;
    for (const p of np.peers) {
      if (!live.nodes.has(p.peerId)) continue;
      const [a, b] = np.nodeId < p.peerId ? [np.nodeId, p.peerId] : [p.peerId, np.nodeId];
      const key = `${a}-${b}`;
      let pair = pairs.get(key);
      if (!pair) pairs.set(key, pair = { key, a, b, sides: new Map() });
      pair.sides.set(np.nodeId, { ...p, natType: np.natType, reportedAt: np.reportedAt });
    }
  }
  const out = [];
  for (const pair of pairs.values()) {
    const sides = [...pair.sides.values()];
    if (sides.every((s) => s.idleSeconds > RECENT_SECONDS)) continue;
    const relayed = sides.find((s) => s.path === 'relay');
    const kind = relayed ? 'relay' : sides.some((s) => s.path === 'direct') ? 'direct' : 'none';
    const latencies = sides.map((s) => s.latencyMs).filter((x) => x !== null);
    const latencyMs = latencies.length ? Math.min(...latencies) : null;
    out.push({ ...pair, kind, relay: relayed ? relayed.relay : null, latencyMs });
  }
  return out;
}

export function pairLabel(p) {
  const ms = p.latencyMs === null ? '' : `${p.latencyMs < 10 ? p.latencyMs.toFixed(1) : Math.round(p.latencyMs)} ms`;
  if (p.kind === 'relay') return `via ${p.relay ?? '?'}${ms ? ` · ${ms}` : ''}`;
  if (p.kind === 'direct') return ms || 'direct';
  return 'no path';
}
