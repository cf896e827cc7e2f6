// The STUN servers named in the relay map, parsed, resolved and deduplicated (two relays may share
// one). Entries that cannot be used stay in the list with an error, so the report shows them.
import { lookup } from 'node:dns/promises';
import { parseEndpoint, tryParseAddress } from '../../proto/ip/address.js';
import { endpointText, type Endpoint } from './classify.js';
import { NoAnswerInTimeError } from '../no-answer.js';

export interface StunServerEntry {
  /** As reported: the resolved "ip:port" when it resolved, else the text given. */
  text: string;
  relays: string[];
  endpoint?: Endpoint;
  family?: 4 | 6;
  error?: string;
}

const RESOLVE_TIMEOUT_MS = 2000;

export async function resolveStunServers(relays: readonly { name: string; stun: readonly string[] }[], signal?: AbortSignal): Promise<StunServerEntry[]> {
  const wanted: { text: string; relay: string }[] = [];
  for (const r of relays) for (const s of r.stun) wanted.push({ text: s, relay: r.name });
  const resolved = await Promise.all(wanted.map((w) => resolveOne(w.text, signal)));
  const byKey = new Map<string, StunServerEntry>();
  const out: StunServerEntry[] = [];
  resolved.forEach((entry, i) => {
    const key = entry.text;
    const seen = byKey.get(key);
    const relay = wanted[i]!.relay;
    if (seen) {
      if (!seen.relays.includes(relay)) seen.relays.push(relay);
      return;
    }
    const e = { ...entry, relays: [relay] };
    byKey.set(key, e);
    out.push(e);
  });
  return out;
}

async function resolveOne(text: string, signal?: AbortSignal): Promise<Omit<StunServerEntry, 'relays'>> {
  let host: string;
  let port: number;
  try {
    ({ host, port } = parseEndpoint(text));
  } catch (err) {
    return { text, error: `bad STUN server ${JSON.stringify(text)}: ${(err as Error).message}` };
  }
  const literal = tryParseAddress(host);
  if (literal) {
    const endpoint = { address: host, port };
    return { text: endpointText(endpoint), endpoint, family: literal.family };
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    const found = await Promise.race([
      lookup(host),
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new NoAnswerInTimeError()), RESOLVE_TIMEOUT_MS); }),
    ]);
    signal?.throwIfAborted();
    const endpoint = { address: found.address, port };
    return { text: endpointText(endpoint), endpoint, family: found.family === 6 ? 6 : 4 };
  } catch (err) {
    signal?.throwIfAborted();
    return { text, error: `cannot resolve ${host}: ${(err as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}
