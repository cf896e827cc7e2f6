// `pinhole ping PEER [-c N]`: disco pings over the peer's current path, one line per reply saying
// which path it took ("via relay NAME" or "via IP:PORT") and how long it took.
import type { Command } from 'commander';
import { localApiCall } from '../localapi/client.js';
import type { PingResult } from '../magicsock/magic-socket.js';

export const PING_PATH = '/v0/ping';

export interface PingReply {
  peer: { name: string; ipv4: string; nodeKey: string };
  reply: PingResult | null;
  /** Whether this node's access policy lets any traffic in from the peer (null: no policy). */
  policyAllowsFromPeer?: boolean | null;
}

class PingUsageError extends Error {
  override readonly name = 'PingUsageError';
}

export function registerPingCommand(program: Command): void {
  program.command('ping')
    .description('ping a peer over the mesh and show the path each reply took')
    .argument('<peer>', 'peer name, overlay IP or node key')
    .option('-c, --count <n>', 'number of pings', '4')
    .option('--timeout <ms>', 'how long to wait for each reply', '2000')
    .action(async (peer: string, opts: { count: string; timeout: string }, cmd: Command) => {
      const socket = (cmd.optsWithGlobals() as { socket: string }).socket;
      const count = Number(opts.count);
      const timeoutMs = Number(opts.timeout);
      if (!Number.isInteger(count) || count < 1 || count > 10_000) throw new PingUsageError(`-c: expected a count from 1 to 10000, got ${opts.count}`);
      if (!Number.isInteger(timeoutMs) || timeoutMs < 10 || timeoutMs > 8000) throw new PingUsageError(`--timeout: expected 10..8000 ms, got ${opts.timeout}`);
      let replies = 0;
      let policyBlocks = false;
      let peerName = peer;
      for (let i = 0; i < count; i++) {
        const started = Date.now();
        const r = await localApiCall<PingReply>(socket, 'POST', PING_PATH, { peer, timeoutMs });
        const who = `${r.peer.name} (${r.peer.ipv4})`;
        peerName = r.peer.name;
        if (r.policyAllowsFromPeer === false) policyBlocks = true;
        if (r.reply) {
          replies++;
          const via = r.reply.path === 'relay' ? `via relay ${r.reply.via}` : `via ${r.reply.via}`;
          process.stdout.write(`pong from ${who} ${via} in ${r.reply.latencyMs.toFixed(2)} ms\n`);
        } else {
          process.stdout.write(`no reply from ${who} within ${timeoutMs} ms\n`);
        }
        const wait = 1000 - (Date.now() - started);
        if (i + 1 < count && wait > 0) await new Promise((res) => setTimeout(res, r.reply ? Math.min(wait, 1000) : 0));
      }
      // The pings are disco messages, which the access policy does not filter: a pong proves the
      // path, not that traffic is allowed. Say so when this node's policy lets nothing in from the peer.
      if (policyBlocks) {
        process.stdout.write(`note: the path works, but the access policy lets no traffic from ${peerName} to this node (pings test the path, not the policy; traffic from here to ${peerName} is up to ${peerName}'s policy)\n`);
      }
      if (replies === 0) {
        process.stderr.write(`pinhole: no reply from ${peer}\n`);
        process.exitCode = 1;
      }
    });
}
