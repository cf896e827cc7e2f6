// Small checks on a pair of mesh nodes for fault tests, the demo and the traversal benchmark:
// pings over the overlay, the path each side reports, how long until traffic flows again, and
// the tail of an agent's log for failure messages.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { peerOf, type MeshNode } from './mesh-lab.js';

export type PathName = 'direct' | 'relay' | 'none';

export interface PingSummary {
  sent: number;
  received: number;
  /** Average RTT of the replies, ms (null without replies). */
  avgMs: number | null;
  output: string;
}

/** `ping -c count` over the overlay from `from` to `to`. */
export async function pingSummary(from: MeshNode, to: MeshNode, count: number, intervalS = 0.2, waitS = 2): Promise<PingSummary> {
  const r = await from.host.exec(['ping', '-n', '-c', String(count), '-i', String(intervalS), '-W', String(waitS), to.ip],
    { timeoutMs: (count * intervalS + waitS + 10) * 1000 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  const avg = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  return { sent: m ? Number(m[1]) : count, received: m ? Number(m[2]) : 0, avgMs: avg ? Number(avg[1]) : null, output: (r.stdout + r.stderr).trim() };
}

/** The path each side reports for the other: a → b and b → a. */
export async function pairPaths(a: MeshNode, b: MeshNode): Promise<{ ab: PathName; ba: PathName }> {
  const [sa, sb] = await Promise.all([a.agent.status(), b.agent.status()]);
  return { ab: peerOf(sa, b.spec.name)?.path ?? 'none', ba: peerOf(sb, a.spec.name)?.path ?? 'none' };
}

/** One word for the pair: direct only if both sides say so, relay if either relays. */
export function pairPathOf(p: { ab: PathName; ba: PathName }): PathName {
  if (p.ab === 'direct' && p.ba === 'direct') return 'direct';
  if (p.ab === 'none' && p.ba === 'none') return 'none';
  return 'relay';
}

/**
 * Pings continuously (every intervalMs, from now) until a reply comes back; returns the time from
 * `since` (epoch ms) until that reply arrived, by ping's own -D timestamps, or null after `ms`.
 */
export async function timeUntilPingable(from: MeshNode, to: MeshNode, since: number, ms: number, intervalMs = 100): Promise<number | null> {
  const proc = from.host.spawn(['ping', '-n', '-D', '-i', String(intervalMs / 1000), to.ip]);
  try {
    const m = await proc.waitForOutput(/^\[(\d+\.\d+)\] \d+ bytes from/m, Math.max(1, since + ms - Date.now()));
    return Math.max(0, Math.round(Number(m[1]) * 1000 - since));
  } catch {
    return null;
  } finally {
    await proc.kill('SIGTERM', 1000);
  }
}

/** The last `lines` lines of a node's agent log (agent.dir/agent.log), for assertion messages. */
export async function agentLogTail(node: MeshNode, lines = 30): Promise<string> {
  const text = await readFile(join(node.agent.dir, 'agent.log'), 'utf8').catch((err: Error) => `(no log: ${err.message})`);
  return `--- ${node.spec.name} agent.log (last ${lines} lines) ---\n${text.trimEnd().split('\n').slice(-lines).join('\n')}`;
}

export async function logTails(nodes: MeshNode[], lines = 30): Promise<string> {
  return (await Promise.all(nodes.map((n) => agentLogTail(n, lines)))).join('\n');
}
