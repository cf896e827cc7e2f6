// Lab pieces for the relay-down and roaming tests and scripts/bench-roaming: a site whose router
// drops everything toward the relay, and a laptop that moves from one NATed site to another.
import type { Host, Site } from '../natlab/index.js';

/** The site's router drops every packet from its LAN toward `ips` (the relay host): relay and its STUN unreachable. */
export async function blockRelay(site: Site, ips: readonly string[]): Promise<void> {
  const set = ips.join(', ');
  await site.router.run(['nft', '-f', '-'], {
    input: `table ip relayblock {\n  chain forward {\n    type filter hook forward priority -10; policy accept;\n    ip daddr { ${set} } drop\n  }\n}\n`,
  });
}

/** Moves `host` from uplink `from` to uplink `to` (whose LAN gateway is `gateway`): old link down, new link and default route up. */
export async function moveUplink(host: Host, from: string, to: string, gateway: string): Promise<void> {
  await host.run(['ip', 'link', 'set', from, 'down']);
  await host.run(['ip', 'link', 'set', to, 'up']);
  await host.run(['ip', 'route', 'replace', 'default', 'via', gateway, 'dev', to]);
}

/** Epoch ms of the reply lines (`ping -D` timestamps) in ping's output. */
export function replyTimes(output: string): number[] {
  return [...output.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)].map((m) => Math.round(Number(m[1]) * 1000));
}

/** Waits until `output()` shows a reply stamped at or after `since`; its time, or null after `ms`. */
export async function firstReplyAfter(output: () => string, since: number, ms: number): Promise<number | null> {
  const end = Date.now() + ms;
  for (;;) {
    const t = replyTimes(output()).find((x) => x >= since);
    if (t !== undefined) return t;
    if (Date.now() > end) return null;
    await new Promise((r) => setTimeout(r, 50));
  }
}
