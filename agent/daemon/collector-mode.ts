// How the agent's V8 collects garbage once it carries bulk traffic through a relay (docs/relay.md,
// "Relay trains and the collector"). Relayed traffic reaches JavaScript as a fresh buffer per
// socket read, and V8 then restarted incremental marking every ~150 ms: a quarter of a core per
// agent in marking threads. Without incremental marking a full collection runs only when the old
// generation is full. Started with it on, an agent collects its start-up garbage in small steps
// (a full collection in the middle of a ping costs 10-17 ms); it turns marking off only once it
// has moved BULK_RELAY_BYTES through relays, for the rest of the process.
import { setFlagsFromString } from 'node:v8';
import type { Logger } from 'pino';

/** The magic socket's onBulkRelay. Does nothing when PINHOLE_V8_FLAGS is set: the user chose V8's flags. */
export function collectorForBulkRelay(log: Pick<Logger, 'info'>, env: NodeJS.ProcessEnv = process.env): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (env.PINHOLE_V8_FLAGS !== undefined) return;
    setFlagsFromString('--no-incremental-marking');
    log.info('bulk traffic through a relay: V8 incremental marking off for this process (docs/relay.md)');
  };
}
