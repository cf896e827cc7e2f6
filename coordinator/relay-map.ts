// The relay map every node gets in its netmap, from `--relay NAME=URL`, `--relay-key NAME=KEY` and
// `--relay-stun NAME=HOST:PORT` and `--relay-region NAME=REGION` (all repeatable; relays of one
// region form a relay mesh, docs/relay-mesh.md). Every relay needs its key (agents refuse a relay
// that does not prove it); a relay given no STUN server gets one at its URL's host on port 3478,
// where `pinhole relay --stun` usually listens.
import type { RelayInfo } from '../proto/control/schemas.js';
import { formatEndpoint, parseEndpoint } from '../proto/ip/address.js';
import { decodeKey, encodeKey } from '../proto/wireguard/keys.js';
import { RELAY_PATH } from '../proto/relay/frames.js';

export const DEFAULT_STUN_PORT = 3478;

export class RelayMapError extends Error {
  override readonly name = 'RelayMapError';
}

function splitNamed(flag: string, text: string, example: string): { name: string; value: string } {
  const eq = text.indexOf('=');
  const name = text.slice(0, eq);
  if (eq <= 0 || !/^[a-z0-9-]{1,64}$/i.test(name)) throw new RelayMapError(`${flag}: expected ${example}, got ${JSON.stringify(text)}`);
  return { name, value: text.slice(eq + 1) };
}

const RELAY_SCHEMES = ['ws:', 'wss:', 'http:', 'https:'];

/** A relay answers only at ws(s)://HOST:PORT/relay: anything else would fail on every node, silently. */
function checkRelayUrl(name: string, url: string): void {
  const example = `e.g. ${name}=ws://203.0.113.10:8443/relay`;
  if (!URL.canParse(url)) throw new RelayMapError(`--relay ${name}: ${JSON.stringify(url)} is not a URL (${example})`);
  const u = new URL(url);
  if (!RELAY_SCHEMES.includes(u.protocol)) throw new RelayMapError(`--relay ${name}: scheme ${u.protocol} is not ws:, wss:, http: or https: (${example})`);
  if (u.pathname !== RELAY_PATH) throw new RelayMapError(`--relay ${name}: the path must be ${RELAY_PATH}, not ${JSON.stringify(u.pathname)} (${example})`);
  if (u.search || u.hash || u.username || u.password) throw new RelayMapError(`--relay ${name}: no query, fragment or credentials in a relay URL (${example})`);
}

/**
 * `--relay` values ("NAME=URL"), `--relay-stun` values ("NAME=HOST:PORT") and `--relay-key` values
 * ("NAME=KEY") → the relay map.
 */
export function buildRelayMap(relayFlags: readonly string[], stunFlags: readonly string[] = [], keyFlags: readonly string[] = [], regionFlags: readonly string[] = []): RelayInfo[] {
  const relays: RelayInfo[] = [];
  for (const text of relayFlags) {
    const { name, value: url } = splitNamed('--relay', text, 'NAME=URL (e.g. home=ws://203.0.113.10:8443/relay)');
    checkRelayUrl(name, url);
    if (relays.some((r) => r.name === name)) throw new RelayMapError(`--relay: relay ${name} is given twice`);
    relays.push({ name, url, stun: [], key: '' });
  }
  for (const text of keyFlags) {
    const { name, value } = splitNamed('--relay-key', text, 'NAME=KEY (the key `pinhole relay` prints on start)');
    const relay = relays.find((r) => r.name === name);
    if (!relay) throw new RelayMapError(`--relay-key: no --relay named ${name}`);
    if (relay.key) throw new RelayMapError(`--relay-key: relay ${name} is given two keys`);
    try {
      relay.key = encodeKey(decodeKey(value.trim()));
    } catch {
      throw new RelayMapError(`--relay-key: ${name}: not a key (44 base64 characters, as \`pinhole relay\` prints on its "pinhole relay key" line)`);
    }
  }
  for (const text of stunFlags) {
    const { name, value } = splitNamed('--relay-stun', text, 'NAME=HOST:PORT (e.g. home=203.0.113.10:3478)');
    const relay = relays.find((r) => r.name === name);
    if (!relay) throw new RelayMapError(`--relay-stun: no --relay named ${name}`);
    let server: string;
    try {
      server = formatEndpoint(parseEndpoint(value));
    } catch (err) {
      throw new RelayMapError(`--relay-stun: ${(err as Error).message}`);
    }
    if (!relay.stun.includes(server)) relay.stun.push(server);
  }
  for (const text of regionFlags) {
    const { name, value } = splitNamed('--relay-region', text, 'NAME=REGION (e.g. r1=eu)');
    const relay = relays.find((r) => r.name === name);
    if (!relay) throw new RelayMapError(`--relay-region: no --relay named ${name}`);
    if (!/^[a-z0-9-]{1,64}$/i.test(value)) throw new RelayMapError(`--relay-region: ${name}: region ${JSON.stringify(value)} must be 1-64 letters, digits or '-'`);
    if (relay.region) throw new RelayMapError(`--relay-region: relay ${name} is given two regions`);
    relay.region = value;
  }
  for (const relay of relays) {
    if (relay.stun.length === 0) {
      const host = new URL(relay.url).hostname; // IPv6 keeps its brackets: "[2001:db8::1]"
      if (host) relay.stun.push(`${host}:${DEFAULT_STUN_PORT}`);
    }
  }
  const keyless = relays.find((r) => !r.key);
  if (keyless) {
    throw new RelayMapError(`--relay ${keyless.name}: no --relay-key ${keyless.name}=KEY (start the relay with --key-file F: it prints "pinhole relay key KEY"; or \`pinhole pubkey < F\`)`);
  }
  return relays;
}
