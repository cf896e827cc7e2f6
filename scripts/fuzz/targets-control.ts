// Fuzz target for control-plane JSON (coordinator ⇄ agent, admin ⇄ coordinator): mutated texts of
// valid messages through JSON.parse, every zod schema an inbound message meets, the policy file
// parser (with line numbers) and the small text parsers. Schemas must answer with a result, never
// throw; a message that passes must keep the shape its type promises.
import {
  ClientStreamMessage, Netmap, NetmapDelta, RegisterRequest, ServerStreamMessage, DeregisterRequest, AuthKeyCreate, RoutesApprove,
} from '../../proto/control/schemas.js';
import { Policy, parseDestination, parsePorts, parseSelector } from '../../proto/control/policy.js';
import { JsonSyntaxError, parseJsonWithLines } from '../../proto/control/json-lines.js';
import { parseDuration } from '../../proto/control/duration.js';
import { RouteRefusedError, advertisableRoute } from '../../proto/control/routes.js';
import { H2_PREFACE, prefaceVerdict } from '../../coordinator/control-h2.js';
import { invariant, rejects, type FuzzTarget } from './target.js';

const KEY = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
const peer = {
  id: 2, name: 'bob', nodeKey: KEY, discoKey: KEY, ipv4: '100.64.0.2', ipv6: 'fd7a:1e57:9a3c::6440:2', endpoints: ['203.0.113.7:41641', '[2001:db8::7]:41641'],
  homeRelay: 'lab', natKind: 'port-restricted-cone', online: true, lastSeen: null, routes: ['198.18.5.0/24'], exitNode: false, tags: ['tag:server'],
};
const self = { id: 1, name: 'alice', nodeKey: KEY, ipv4: '100.64.0.1', ipv6: 'fd7a:1e57:9a3c::6440:1', keyExpiresAt: null, tags: [], routes: ['0.0.0.0/0'] };
const filter = [{ srcIps: ['100.64.0.2'], dst: [{ cidr: '100.64.0.1/32', ports: '22,80-90' }], protocols: [6] }];
const SAMPLES: unknown[] = [
  { type: 'netmap', seq: 0, self, peers: [peer, { ...peer, id: 3 }], packetFilter: filter, relays: [{ name: 'lab', url: 'ws://203.0.113.10:443/relay', stun: ['203.0.113.10:3478'] }] },
  { type: 'delta', seq: 4, upserts: [peer], patches: [{ id: 2, endpoints: ['198.51.100.1:1'], natKind: 'symmetric', online: false }], removals: [3], packetFilter: null },
  { type: 'challenge', challenge: 'c'.repeat(32), serverKey: KEY },
  { type: 'hello', nodeKey: KEY, challenge: 'c'.repeat(32), proof: 'p'.repeat(22), lastSeq: 3, capabilities: ['peer-patches'] },
  { type: 'endpoints', endpoints: ['203.0.113.7:41641'] },
  { type: 'endpoints', endpoints: ['203.0.113.7:41641'], homeRelay: 'lab', natKind: 'symmetric' },
  { type: 'ping', t: 1 },
  { authKey: 'phk_abc', nodeKey: KEY, discoKey: KEY, hostname: 'alice', challenge: 'c'.repeat(32), proof: 'p'.repeat(22), advertiseRoutes: ['198.18.0.0/24'] },
  { groups: { 'group:ops': ['alice'] }, acls: [{ action: 'accept', src: ['group:ops'], dst: ['tag:server:22,443'] }] },
  { routes: ['198.18.1.0/24'] },
  { reusable: true, expiry: '24h', tags: ['tag:server'] },
];
const SCHEMAS = [Netmap, NetmapDelta, ServerStreamMessage, ClientStreamMessage, RegisterRequest, DeregisterRequest, AuthKeyCreate, RoutesApprove, Policy];

export function controlJson(): FuzzTarget {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  return {
    name: 'control-json',
    corpus: SAMPLES.map((s) => enc.encode(JSON.stringify(s, null, (SAMPLES.indexOf(s) & 1) ? 2 : undefined))),
    run(input) {
      const text = dec.decode(input);
      let value: unknown;
      let parsed = false;
      try {
        value = JSON.parse(text);
        parsed = true;
      } catch (err) {
        if (!(err instanceof SyntaxError)) throw err;
      }
      rejects(() => parseJsonWithLines(text), [JsonSyntaxError]);
      if (parsed) {
        for (const schema of SCHEMAS) {
          const r = schema.safeParse(value);
          invariant(typeof r.success === 'boolean', 'safeParse answered');
        }
        const nm = Netmap.safeParse(value);
        if (nm.success) invariant(Array.isArray(nm.data.peers) && nm.data.peers.every((p) => typeof p.nodeKey === 'string' && p.nodeKey.length === 44), 'a netmap that passed has a bad peer');
      }
      // Structure-aware: a valid message with one field replaced by an odd value the input picks.
      const near = replaceLeaf(SAMPLES[(input[0] ?? 0) % SAMPLES.length], input);
      for (const schema of SCHEMAS) invariant(typeof schema.safeParse(near).success === 'boolean', 'safeParse answered');
      // The small text parsers, on the input as text.
      const short = text.slice(0, 80);
      parseSelector(short);
      parsePorts(short);
      parseDestination(short);
      rejects(() => parseDuration(short));
      rejects(() => advertisableRoute(short), [RouteRefusedError]);
    },
  };
}

const ODD: unknown[] = [null, -1, 0, 1.5, 1e308, -0, Number.MAX_SAFE_INTEGER + 2, '', 'x'.repeat(5000), [], {}, true, '__proto__', { __proto__: { polluted: 1 } },
  '100.64.0.1:99999', '[::1]:0', 'tag:', 'group:', '0.0.0.0/0', '::/0', '198.18.1.0/33', KEY.slice(1), `${KEY}x`, [null], [[[]]]];

/** A deep copy of `sample` with the field the input's bytes lead to replaced by one of ODD. */
function replaceLeaf(sample: unknown, input: Uint8Array): unknown {
  const copy = JSON.parse(JSON.stringify(sample)) as unknown;
  let node = copy as Record<string, unknown> | unknown[];
  let i = 1;
  for (;;) {
    const keys = Object.keys(node);
    if (keys.length === 0) return copy;
    const k = keys[(input[i++] ?? 0) % keys.length]!;
    const child = (node as Record<string, unknown>)[k];
    const stop = (input[i++] ?? 0) % 3 === 0;
    if (child !== null && typeof child === 'object' && !stop) { node = child as Record<string, unknown>; continue; }
    (node as Record<string, unknown>)[k] = ODD[(input[i] ?? 0) % ODD.length];
    return copy;
  }
}

/**
 * The first bytes of a connection on the coordinator's plain port, as the HTTP/2 preface check
 * reads them (coordinator/control-h2.ts), whole and cut in two: the verdict is HTTP/2 exactly when
 * the bytes start with the preface, and once given it never changes as more bytes come.
 */
export function controlPreface(): FuzzTarget {
  return {
    name: 'control-preface',
    corpus: [H2_PREFACE, Buffer.concat([H2_PREFACE, Buffer.from([0, 0, 18, 4, 0, 0, 0, 0, 0])]), Buffer.from('POST /api/v1/control HTTP/1.1\r\n'), H2_PREFACE.subarray(0, 10)],
    run(input) {
      const whole = prefaceVerdict(input);
      const starts = input.length >= H2_PREFACE.length && Buffer.from(input.subarray(0, H2_PREFACE.length)).equals(H2_PREFACE);
      invariant((whole === 'http2') === starts, `verdict ${whole} for ${Buffer.from(input.subarray(0, 24)).toString('hex')}`);
      const cut = input.length === 0 ? 0 : input[0]! % (input.length + 1);
      const first = prefaceVerdict(input.subarray(0, cut));
      invariant(first === 'more' || first === whole, `verdict ${first} on ${cut} bytes, then ${whole}`);
    },
  };
}
