// netcheck: what the network in front of the agent's UDP socket does. All STUN goes out of the
// one socket WireGuard uses, so the public address and NAT behaviour found are the ones peers
// will meet. Order matters on a shared socket (see filter-state.ts):
//   1. test I (a plain Binding) to every relay's STUN servers at once, relay latencies alongside;
//   2. RFC 5780 §4.4 filtering tests II and III (CHANGE-REQUEST) against the primary address
//      only, and the hairpin probe — nothing has been sent to the server's other address yet;
//   3. RFC 5780 §4.3 mapping tests II and III to the other IP (primary port, then other port).
import { networkInterfaces } from 'node:os';
import type { StunBindingResult, StunClient } from './stun-client.js';
import { StunErrorResponseError, StunTimeoutError } from './stun-client.js';
import { endpointText, filteringFromTests, mappingFromObservations, mappingFromTests, type Endpoint, type MappingObservation } from './classify.js';
import { filterStateFor, type FilterState, type FilteringMeasurement } from './filter-state.js';
import type { NatBehaviourName, NetcheckBehaviourTests, NetcheckRelayResult, NetcheckReport, NetcheckStunResult } from './report.js';
import { resolveStunServers, type StunServerEntry } from './stun-servers.js';
import { abortError, NoAnswerInTimeError } from '../no-answer.js';

export type { NatBehaviourName, NetcheckBehaviourTests, NetcheckRelayResult, NetcheckReport, NetcheckStunResult } from './report.js';

export interface NetcheckSocket {
  /** STUN transactions over the agent's WireGuard UDP socket. */
  readonly stun: StunClient;
  /** Sends a probe to address:port from the same socket; true if it arrives back at this socket within timeoutMs (hairpinning). */
  hairpin(address: string, port: number, timeoutMs: number): Promise<boolean>;
}

export interface NetcheckRelay {
  name: string;
  url: string;
  /** "ip:port" STUN servers ("[ipv6]:port"; a "host:port" is resolved). */
  stun: string[];
}

export interface NetcheckTimings {
  /** Per Binding transaction (retransmitted inside it); default 2000. */
  stunTimeoutMs: number;
  /** Per filtering test: an answer the NAT drops costs this long; default 1500. */
  filteringTimeoutMs: number;
  /** Default 500. */
  hairpinTimeoutMs: number;
  /** Per relay latency measurement; default 3000. */
  relayTimeoutMs: number;
}

export interface NetcheckOptions {
  socket: NetcheckSocket;
  relays: NetcheckRelay[];
  /** Round trip to a relay over its TCP/WebSocket connection, in ms (the lead provides it from the relay client). */
  relayLatency: (relay: NetcheckRelay, signal: AbortSignal) => Promise<number>;
  signal?: AbortSignal;
  /** Overrides of the default timeouts (the whole run stays well under the CLI's 10 s). */
  timings?: Partial<NetcheckTimings>;
}

export const DEFAULT_NETCHECK_TIMINGS: NetcheckTimings = {
  stunTimeoutMs: 2000,
  filteringTimeoutMs: 1500,
  hairpinTimeoutMs: 500,
  relayTimeoutMs: 3000,
};

interface Answered {
  entry: StunServerEntry & { endpoint: Endpoint; family: 4 | 6 };
  result: StunBindingResult;
}

const oneLine = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split('\n')[0]!;

export async function runNetcheck(opts: NetcheckOptions): Promise<NetcheckReport> {
  const t = { ...DEFAULT_NETCHECK_TIMINGS, ...opts.timings };
  const { signal } = opts;
  signal?.throwIfAborted();
  const startedAt = Date.now();
  const t0 = performance.now();
  const stun = opts.socket.stun;
  // Where this run sent, for the filtering memory: known once test I tells our public address.
  const sends: { to: Endpoint; at: number }[] = [];
  let state: FilterState | null = null;
  const noteSend = (to: Endpoint): void => {
    if (state) state.noteSend(to);
    else sends.push({ to, at: Date.now() });
  };
  const request = (to: Endpoint, o: { changeIp?: boolean; changePort?: boolean; timeoutMs: number }): Promise<StunBindingResult> => {
    noteSend(to);
    return stun.request(to, { ...o, ...(signal ? { signal } : {}) });
  };

  const relaysDone = measureRelays(opts, t.relayTimeoutMs);

  // 1. Test I against every server.
  const servers = await resolveStunServers(opts.relays, signal);
  const stunResults: NetcheckStunResult[] = [];
  const answered: Answered[] = [];
  await Promise.all(servers.map(async (entry, i) => {
    const row: NetcheckStunResult = { server: entry.text, relays: entry.relays, rttMs: null, mapped: null, otherAddress: null };
    stunResults[i] = row;
    if (!entry.endpoint) {
      row.error = entry.error ?? 'unusable STUN server';
      return;
    }
    try {
      const result = await request(entry.endpoint, { timeoutMs: t.stunTimeoutMs });
      row.rttMs = round(result.rttMs);
      row.mapped = endpointText(result.mapped);
      if (result.otherAddress) row.otherAddress = endpointText(result.otherAddress);
      answered[i] = { entry: entry as Answered['entry'], result };
    } catch (err) {
      signal?.throwIfAborted();
      row.error = oneLine(err);
    }
  }));
  const ok = answered.filter((a): a is Answered => a !== undefined);
  const v4 = ok.filter((a) => a.entry.family === 4 && a.result.mapped.family === 4);
  const v6 = ok.find((a) => a.entry.family === 6 && a.result.mapped.family === 6);
  const publicV4 = v4[0]?.result.mapped ?? null;
  if (publicV4) {
    state = filterStateFor(endpointText(publicV4));
    for (const s of sends) state.noteSend(s.to, s.at);
  }

  // An RFC 5780 server: OTHER-ADDRESS of the same family on another IP and port.
  const rfc5780 = v4.filter((a) => {
    const o = a.result.otherAddress;
    return o && o.family === 4 && o.address !== a.entry.endpoint.address && o.port !== a.entry.endpoint.port;
  });
  const clean = rfc5780.find((a) => state!.isClean(a.entry.endpoint, a.result.otherAddress!));
  const tested = clean ?? rfc5780[0];

  // 2. Filtering (only on a clean server) and hairpinning, at once.
  const [filteringTests, hairpinning] = await Promise.all([
    clean ? filteringTestsAgainst(clean, request, t.filteringTimeoutMs, signal) : Promise.resolve(null),
    publicV4 ? hairpin(opts.socket, publicV4, t.hairpinTimeoutMs, noteSend, signal) : Promise.resolve(null),
  ]);

  // 3. Mapping tests II and III against the other IP.
  let tests: NetcheckBehaviourTests | null = null;
  const observations: MappingObservation[] = v4.map((a) => ({ server: a.entry.endpoint, mapped: a.result.mapped }));
  let mapping: NatBehaviourName | null = null;
  if (tested) {
    const primary = tested.entry.endpoint;
    const other = tested.result.otherAddress!;
    const probe = async (to: Endpoint): Promise<Endpoint | null> => {
      try {
        const r = await request(to, { timeoutMs: t.stunTimeoutMs });
        if (r.mapped.family !== 4) return null;
        observations.push({ server: to, mapped: r.mapped });
        return r.mapped;
      } catch {
        signal?.throwIfAborted();
        return null;
      }
    };
    const [II, III] = await Promise.all([probe({ address: other.address, port: primary.port }), probe({ address: other.address, port: other.port })]);
    const I = tested.result.mapped;
    mapping = mappingFromTests(I, II, III);
    tests = {
      server: endpointText(primary),
      otherAddress: endpointText(other),
      mapping: { I: endpointText(I), II: II && endpointText(II), III: III && endpointText(III) },
      filtering: filteringReport(filteringTests, state!.lastMeasurement, clean !== undefined),
    };
  }
  const fromObservations = mappingFromObservations(observations);
  mapping ??= fromObservations.mapping;

  const filtering = tests ? filteringFromTests(tests.filtering.II, tests.filtering.III) : null;
  const relays = await relaysDone;
  const preferred = relays.filter((r) => r.latencyMs !== null).sort((a, b) => a.latencyMs! - b.latencyMs!)[0];
  signal?.throwIfAborted();
  return {
    startedAt: new Date(startedAt).toISOString(),
    durationMs: round(performance.now() - t0),
    udp: ok.length > 0,
    ipv4: publicV4 && endpointText(publicV4),
    ipv6: v6 ? endpointText(v6.result.mapped) : null,
    behindNat: publicV4 ? !localAddresses().has(publicV4.address) : null,
    mapping,
    mappingVariesByDestIp: fromObservations.variesByDestIp,
    filtering,
    hairpinning,
    preferredRelay: preferred?.name ?? null,
    relays,
    stun: stunResults,
    tests,
  };

  function filteringReport(measured: FilteringMeasurement | null, last: FilteringMeasurement | null, wasClean: boolean): NetcheckBehaviourTests['filtering'] {
    if (measured) {
      if (measured.II !== null) state!.remember(measured);
      return { II: measured.II, III: measured.III, measuredAt: new Date(measured.measuredAt).toISOString(), fromCache: false };
    }
    if (!wasClean && last) return { II: last.II, III: last.III, measuredAt: new Date(last.measuredAt).toISOString(), fromCache: true };
    return {
      II: null, III: null, measuredAt: null, fromCache: false,
      skipped: 'this socket sent to the other address of every RFC 5780 server in the last few minutes; the NAT may still let it in',
    };
  }
}

type Requester = (to: Endpoint, o: { changeIp?: boolean; changePort?: boolean; timeoutMs: number }) => Promise<StunBindingResult>;

/** RFC 5780 §4.4 tests II (change IP and port) and III (change port), both to the primary address. */
async function filteringTestsAgainst(server: Answered, request: Requester, timeoutMs: number, signal?: AbortSignal): Promise<FilteringMeasurement> {
  const attempt = async (changeIp: boolean): Promise<boolean | null> => {
    try {
      await request(server.entry.endpoint, { changeIp, changePort: true, timeoutMs });
      return true;
    } catch (err) {
      signal?.throwIfAborted();
      if (err instanceof StunTimeoutError) return false; // the NAT dropped the answer
      if (err instanceof StunErrorResponseError) return null; // the server cannot change its address
      throw err;
    }
  };
  const [II, III] = await Promise.all([attempt(true), attempt(false)]);
  return { II, III, measuredAt: Date.now(), server: endpointText(server.entry.endpoint) };
}

async function hairpin(socket: NetcheckSocket, to: Endpoint, timeoutMs: number, noteSend: (to: Endpoint) => void, signal?: AbortSignal): Promise<boolean | null> {
  noteSend(to);
  try {
    return await socket.hairpin(to.address, to.port, timeoutMs);
  } catch {
    signal?.throwIfAborted();
    return null;
  }
}

async function measureRelays(opts: NetcheckOptions, timeoutMs: number): Promise<NetcheckRelayResult[]> {
  return Promise.all(opts.relays.map(async (relay): Promise<NetcheckRelayResult> => {
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    // The measurement may ignore its signal: the timeout and an abort end the wait regardless.
    const stop = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new NoAnswerInTimeError();
        ac.abort(err);
        reject(err);
      }, timeoutMs);
      onAbort = () => {
        ac.abort(opts.signal!.reason);
        reject(abortError(opts.signal!, () => new Error('aborted')));
      };
      if (opts.signal?.aborted) onAbort();
      else opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const ms = await Promise.race([opts.relayLatency(relay, ac.signal), stop]);
      if (!Number.isFinite(ms) || ms < 0) throw new Error(`bad latency ${ms}`);
      return { name: relay.name, url: relay.url, latencyMs: round(ms) };
    } catch (err) {
      return { name: relay.name, url: relay.url, latencyMs: null, error: oneLine(err) };
    } finally {
      clearTimeout(timer);
      if (onAbort) opts.signal?.removeEventListener('abort', onAbort);
    }
  }));
}

function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

const round = (ms: number): number => Math.round(ms * 100) / 100;
