// What netcheck's earlier runs did to the NAT in front of the agent's one UDP socket. The RFC
// 5780 filtering test asks a server to answer from an address we never sent to; once a run has
// sent to a server's other address (mapping tests II/III do), the NAT lets that address in for a
// while (restricted cones remember it, conntrack keeps the flow), and a filtering test on the same
// socket would read endpoint-independent. coturn avoids this with a fresh socket per test; the
// agent has one socket, so it remembers where it sent and reuses the last clean result instead.
// The memory lives in the agent process: a restarted agent on the same port may still meet the
// state its predecessor left (docs/netcheck.md).
import type { Endpoint } from './classify.js';

/**
 * How long a NAT may keep state from one of our packets. RFC 4787 REQ-5 asks for at least 2 min
 * of UDP mapping lifetime; Linux conntrack keeps an answered flow 30–120 s, the lab's restricted
 * cone 60 s.
 */
export const FILTER_STATE_MS = 180_000;

export interface FilteringMeasurement {
  II: boolean | null;
  III: boolean | null;
  /** Date.now() of the measurement. */
  measuredAt: number;
  server: string;
}

export class FilterState {
  /** "ip" and "ip|port" → Date.now() of the last send there. */
  private readonly sentAt = new Map<string, number>();
  private last: FilteringMeasurement | null = null;
  /** Date.now() of the last use, for forgetting idle states. */
  lastUsed = 0;

  noteSend(to: Endpoint, now = Date.now()): void {
    this.sentAt.set(to.address, Math.max(now, this.sentAt.get(to.address) ?? 0));
    const key = `${to.address}|${to.port}`;
    this.sentAt.set(key, Math.max(now, this.sentAt.get(key) ?? 0));
    this.lastUsed = Math.max(this.lastUsed, now);
    if (this.sentAt.size > 256) {
      for (const [k, t] of this.sentAt) if (t < now - FILTER_STATE_MS) this.sentAt.delete(k);
    }
  }

  /**
   * A filtering test against `primary` gets its answers from `other` (test II) and from the
   * primary IP on the other port (test III): clean if we sent to neither lately.
   */
  isClean(primary: Endpoint, other: Endpoint, now = Date.now()): boolean {
    const since = now - FILTER_STATE_MS;
    const recent = (key: string): boolean => (this.sentAt.get(key) ?? -Infinity) >= since;
    return !recent(other.address) && !recent(`${primary.address}|${other.port}`);
  }

  remember(m: FilteringMeasurement): void {
    this.last = m;
  }

  /** The last clean measurement through this mapping. */
  get lastMeasurement(): FilteringMeasurement | null {
    return this.last;
  }
}

/**
 * NAT state belongs to a mapping, so the memory is keyed by our public ip:port as test I saw it:
 * the same socket after `pinhole down` / `up` on the same port, while the NAT still holds its
 * mapping, finds what it did before; another network (another public IP) starts afresh.
 */
const states = new Map<string, FilterState>();

export function filterStateFor(publicEndpoint: string, now = Date.now()): FilterState {
  let s = states.get(publicEndpoint);
  if (!s) {
    for (const [k, v] of states) if (v.lastUsed < now - FILTER_STATE_MS) states.delete(k);
    s = new FilterState();
    states.set(publicEndpoint, s);
  }
  s.lastUsed = Math.max(s.lastUsed, now);
  return s;
}
