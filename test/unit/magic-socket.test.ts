// The magic socket's path choice, on two real devices and magic sockets over an in-memory
// internet and a real relay server on loopback (test/helpers/memory-magic.ts): traffic rides the
// relay from the first packet; a pong moves the peer to the direct path; a direct path that stops
// answering falls back to the relay; a netmap update leaves a confirmed path alone. One pair of
// nodes goes through the steps in order.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startRelayServer, type RelayServer } from '../../relay/server.js';
import { silentLogger } from '../../relay/log.js';
import { encodeKey } from '../../proto/wireguard/keys.js';
import { addrKind, packedText } from '../../agent/magicsock/path-addr.js';
import { PONG_TRUST_MS } from '../../agent/magicsock/peer-path.js';
import { eventually } from '../helpers/relay-process.js';
import { makeMagicPair, type MagicNode, type MagicPair } from '../helpers/memory-magic.js';

let relay: RelayServer;
let pair: MagicPair;

before(async () => {
  relay = await startRelayServer({ listen: { address: '127.0.0.1', port: 0 }, logger: silentLogger() });
  pair = makeMagicPair({ name: 'r1', url: relay.url, stun: [], key: encodeKey(relay.publicKey) });
  pair.udpOpen = false;
  pair.netmap(pair.a, [pair.b.record]);
  pair.netmap(pair.b, [pair.a.record]);
});

after(async () => {
  await pair?.close();
  await relay?.close();
});

const status = (from: MagicNode, to: MagicNode) => from.magic.peerStatus(to.record.nodeKey)!;
const wgEndpoint = (from: MagicNode, to: MagicNode) => from.device.peers.get(to.record.nodeKey)!.endpoint;

/** Sends from a to b until b's TUN has `payload` (traffic keeps the path active meanwhile). */
async function deliver(payload: string, timeoutMs = 8000): Promise<void> {
  await eventually(() => {
    if (!pair.b.delivered.some((p) => p.subarray(20).toString() === payload)) {
      pair.sendIp(pair.a, payload);
      assert.fail(`${payload} not delivered yet`);
    }
  }, timeoutMs, 200);
}

test('with UDP between the nodes cut, the relay carries the first packets and the path is "relay"', async () => {
  assert.equal(addrKind(wgEndpoint(pair.a, pair.b)!), 'relay', 'the magic socket points a fresh peer at its relay');
  await deliver('via relay');
  const s = status(pair.a, pair.b);
  assert.equal(s.path, 'relay');
  assert.equal(s.relay, 'r1');
  assert.ok(s.tried.pingsSent > 0, 'direct candidates were probed');
  assert.equal(s.tried.pongsReceived, 0);
  assert.ok(pair.cut > 0, 'the probes were dropped on the way');
});

test('through the relay both say (disco features) that they accept relay trains', async () => {
  const wg = (from: MagicNode, to: MagicNode) => from.device.peers.get(to.record.nodeKey)!;
  await eventually(() => {
    pair.sendIp(pair.a, 'features');
    assert.equal(wg(pair.a, pair.b).relayTrains, true, 'b said so to a');
    assert.equal(wg(pair.b, pair.a).relayTrains, true, 'a said so to b');
  }, 5000, 100);
  assert.ok(pair.a.magic.counters.featuresSent > 0 && pair.b.magic.counters.featuresReceived > 0);
});

test('a pong moves the relayed peer to the direct path; traffic follows it', async () => {
  pair.udpOpen = true;
  await eventually(() => {
    pair.sendIp(pair.a, 'keep active');
    assert.equal(status(pair.a, pair.b).path, 'direct');
  }, 10_000, 200);
  const s = status(pair.a, pair.b);
  assert.equal(s.endpoint, pair.b.addrText);
  assert.ok(s.latencyMs !== null && s.latencyMs >= 0);
  assert.equal(packedText(wgEndpoint(pair.a, pair.b)!), pair.b.addrText, 'WireGuard sends to the confirmed endpoint');
  const relayedBefore = relay.counters.packetsForwarded;
  await deliver('direct');
  assert.equal(relay.counters.packetsForwarded, relayedBefore, 'nothing through the relay');
});

test('a netmap update does not clobber the confirmed direct path', () => {
  const changes = pair.a.pathChanges;
  const updated = { ...pair.b.record, endpoints: ['198.51.100.9:41641', pair.b.addrText] };
  pair.a.applier.applyAll([updated]);
  assert.equal(packedText(wgEndpoint(pair.a, pair.b)!), pair.b.addrText, 'the netmap applier leaves the endpoint alone');
  pair.a.magic.syncPeers([updated]);
  assert.equal(packedText(wgEndpoint(pair.a, pair.b)!), pair.b.addrText, 'still the confirmed endpoint, not the new first one');
  const s = status(pair.a, pair.b);
  assert.equal(s.path, 'direct');
  assert.equal(s.endpoint, pair.b.addrText);
  assert.equal(s.tried.candidates, 2, 'the new endpoint is a candidate');
  assert.equal(pair.a.pathChanges, changes, 'no path change reported');
});

test('a direct path that stops answering falls back to the relay, and traffic still arrives', async () => {
  pair.udpOpen = false;
  const cutAt = Date.now();
  await eventually(() => {
    pair.sendIp(pair.a, 'keep active');
    assert.equal(status(pair.a, pair.b).path, 'relay');
  }, PONG_TRUST_MS + 5000, 200);
  assert.ok(Date.now() - cutAt >= 300, 'not before a heartbeat went unanswered');
  assert.equal(addrKind(wgEndpoint(pair.a, pair.b)!), 'relay');
  assert.match(status(pair.a, pair.b).whyNotDirect ?? '', /./, 'the status says why it is not direct');
  await deliver('relay again');
});
