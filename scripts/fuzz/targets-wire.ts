// Fuzz targets for what arrives on the agent's UDP socket and the relay's TCP stream: WireGuard
// messages and the handshake responder, a whole WireGuard device, disco (box + replay window),
// STUN, relay frames and the frame reader, relay mesh frames.
import nacl from 'tweetnacl';
import { discoSharedKey } from '../../agent/magicsock/disco-key.js';
import {
  decodeCookieReply, decodeInitiation, decodeResponse, encodeCookieReply, encodeResponse, isTransportMessage, messageType,
  transportCounter, transportReceiver,
} from '../../proto/wireguard/messages.js';
import { HandshakeError, consumeInitiation, createInitiation, localIdentity, remoteIdentity } from '../../proto/wireguard/handshake.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import { tai64n } from '../../proto/wireguard/tai64n.js';
import { DISCO_KEY_LEN, DISCO_MAGIC, decodeDiscoPayload, encodeDiscoPayload, openDisco, sealDisco, isDiscoPacket, type DiscoMessage } from '../../proto/disco/messages.js';
import { DiscoReplayWindow, REORDER_US } from '../../proto/disco/replay-window.js';
import { decodeStunMessage, encodeStunMessage, isStunMessage, METHOD_BINDING } from '../../proto/stun/message.js';
import { encodeBindingError, encodeBindingRequest, encodeBindingSuccess } from '../../proto/stun/binding.js';
import { decodeRelayFrame, encodeRelayFrame, FRAME_HEADER_LEN, type RelayFrame } from '../../proto/relay/frames.js';
import { RelayFrameReader } from '../../proto/relay/frame-reader.js';
import { decodeMeshFrame, encodeMeshFrame, forwardRunPackets, MESH_FRAME, type MeshFrame } from '../../proto/relay/mesh-frames.js';
import { makeWire, ipv4Packet, sealTransport, SLOT } from '../../test/helpers/memory-link.js';
import { TRAIN_MAX_PLAINTEXT } from '../../agent/wireguard/relay-train.js';
import { ipPacketLength } from '../../proto/ip/packet.js';
import { bytesEqual, invariant, rejects, type FuzzTarget } from './target.js';

export function wireguardMessages(): FuzzTarget {
  const a = localIdentity(generatePrivateKey(), new Uint8Array(32));
  const bPriv = generatePrivateKey();
  const b = localIdentity(bPriv, publicKeyFromPrivate(bPriv));
  const init = createInitiation({ ...a, publicKey: publicKeyFromPrivate(a.privateKey) }, remoteIdentity(a, b.publicKey), 7, tai64n(Date.now())).message;
  const transport = new Uint8Array(48);
  transport[0] = 4;
  return {
    name: 'wireguard-messages',
    corpus: [
      init,
      encodeResponse({ sender: 1, receiver: 7, ephemeral: new Uint8Array(32).fill(3), encryptedNothing: new Uint8Array(16), mac1: new Uint8Array(16), mac2: new Uint8Array(16) }),
      encodeCookieReply({ receiver: 7, nonce: new Uint8Array(24), encryptedCookie: new Uint8Array(32) }),
      transport,
    ],
    run(input) {
      const t = messageType(input);
      invariant(t >= 0 && t <= 4, `messageType ${t}`);
      rejects(() => decodeInitiation(input));
      rejects(() => decodeResponse(input));
      rejects(() => decodeCookieReply(input));
      if (isTransportMessage(input, 0, input.length)) {
        invariant(input.length >= 32, 'a transport message shorter than header + tag');
        transportReceiver(input, 0);
        invariant(Number.isSafeInteger(transportCounter(input, 0)), 'counter');
      }
    },
  };
}

/** The responder half of Noise IKpsk2: only the one valid initiation (its crypto bytes) is ever accepted. */
export function wireguardResponder(): FuzzTarget {
  const aPriv = generatePrivateKey();
  const a = localIdentity(aPriv, publicKeyFromPrivate(aPriv));
  const bPriv = generatePrivateKey();
  const b = localIdentity(bPriv, publicKeyFromPrivate(bPriv));
  const bSeesA = remoteIdentity(b, a.publicKey);
  const valid = [1, 2].map((i) => createInitiation(a, remoteIdentity(a, b.publicKey), i, tai64n(Date.now() + i)).message);
  return {
    name: 'wireguard-responder',
    corpus: valid,
    run(input) {
      let accepted = false;
      rejects(() => {
        consumeInitiation(b, input, (pub) => (bytesEqual(pub, a.publicKey) ? bSeesA.staticStatic : undefined));
        accepted = true;
      }, [HandshakeError]);
      // Bytes 8..116 (ephemeral, sealed static, sealed timestamp) are what the AEAD protects.
      if (accepted) invariant(valid.some((v) => bytesEqual(v.subarray(8, 116), input.subarray(8, 116))), 'a forged initiation was accepted');
    },
  };
}

/** A whole device (handshake state machine, cookies, transport, replay window) fed hostile datagrams. */
export function wireguardDevice(): FuzzTarget {
  const w = makeWire();
  // The corpus: what crosses the wire (initiation, response, transport messages of several sizes).
  const corpus: Uint8Array[] = [];
  w.filter = (_from, d) => { if (corpus.length < 8) corpus.push(Uint8Array.from(d)); return [d]; };
  w.sendIp(w.a, ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('up')));
  const node = w.b;
  const session = [...node.device.peers.values()][0]!.current!;
  for (let i = 0; i < 4; i++) w.sendIp(w.a, ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.alloc(i * 300, i)));
  const lengths = new Uint32Array(64);
  const addrs = new Uint8Array(64 * 20);
  addrs.set(w.a.addr, 0);
  const sumDrops = (): number => Object.values(node.device.drops).reduce((x, y) => x + y, 0);
  const hs = (): number => node.device.handshakes.cookieRepliesReceived + node.device.handshakes.initiationsReceived
    + node.device.handshakes.responsesReceived + node.device.handshakes.cookieRepliesSent;
  return {
    name: 'wireguard-device',
    corpus,
    run(input) {
      const b = Buffer.from(input.subarray(0, SLOT));
      if (b.length >= 16 && b[0] === 4 && (b[1]! & 1)) b.writeUInt32LE(session.localIndex, 4);
      const before = sumDrops() + hs() + node.delivered.length;
      b.copy(node.udpSlab.slab, 0);
      lengths[0] = b.length;
      node.device.receiveUdpBatch(node.udpSlab, lengths, addrs, 1);
      // At least once: an initiation that passes mac1 is counted as received and, if it then fails
      // (a replayed timestamp), as rejected too.
      invariant(sumDrops() + hs() + node.delivered.length >= before + 1, 'a datagram was neither delivered, a handshake, nor a counted drop');
      if (node.delivered.length > 64) node.delivered.length = 0;
    },
    finish() {
      const pkt = ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('still up'));
      node.delivered.length = 0;
      w.sendIp(w.a, pkt);
      invariant(node.delivered.length === 1 && bytesEqual(node.delivered[0]!, pkt), 'the tunnel stopped working after the fuzzing');
    },
    close() { w.close(); },
  };
}

/**
 * Relay trains: hostile plaintexts sealed under a real session (so they pass the AEAD, as a
 * hostile peer's would) and received through the relayed path, which walks them as trains.
 * Everything delivered is a whole IP packet from the peer's allowed IPs to this node.
 */
export function relayTrains(): FuzzTarget {
  const w = makeWire({ relayed: true });
  const A = '100.64.0.1', B = '100.64.0.2';
  w.sendIp(w.a, ipv4Packet(A, B, Buffer.from('up')));
  const peerB = [...w.a.device.peers.values()][0]!;
  peerB.relayTrains = true;
  const kp = peerB.current!;
  const node = w.b;
  const pk = (n: number, size: number, proto = 6): Buffer => ipv4Packet(A, B, Buffer.alloc(size, n), proto);
  const corpus = [
    Buffer.concat([pk(1, 100), pk(2, 1300), pk(3, 0, 17)]),
    pk(4, 50),
    Buffer.concat([pk(5, 10), Buffer.alloc(7)]),
    Buffer.concat([pk(6, 40), ipv4Packet('100.64.7.7', B, Buffer.alloc(30)), pk(8, 20)]),
  ];
  const sumDrops = (): number => Object.values(node.device.drops).reduce((x, y) => x + y, 0);
  return {
    name: 'relay-trains',
    corpus,
    run(input) {
      const plain = input.subarray(0, TRAIN_MAX_PLAINTEXT);
      const before = sumDrops() + node.delivered.length;
      const seen = node.delivered.length;
      w.inject(node, w.a.addr, sealTransport(kp, plain));
      for (const p of node.delivered.slice(seen)) {
        invariant(ipPacketLength(p, 0, p.length) === p.length, 'delivered a packet that is not whole');
        invariant((p[0]! >>> 4) === 4 && p.subarray(12, 16).join('.') === A && p.subarray(16, 20).join('.') === B, 'delivered a packet not from the peer to us');
      }
      invariant(plain.length === 0 || sumDrops() + node.delivered.length > before, 'a train was neither delivered nor a counted drop');
      if (node.delivered.length > 64) node.delivered.length = 0;
    },
    finish() {
      const pkt = pk(9, 200);
      node.delivered.length = 0;
      w.sendIps(w.a, [pkt, pkt]);
      invariant(node.delivered.length === 2 && bytesEqual(node.delivered[1]!, pkt) && node.device.trains.received > 0, 'the tunnel stopped working after the fuzzing');
    },
    close() { w.close(); },
  };
}

/** Disco: box, payload decoder and the replay window. Only untouched sealed packets open. */
export function disco(): FuzzTarget {
  const a = nacl.box.keyPair();
  const b = nacl.box.keyPair();
  const ab = discoSharedKey(b.publicKey, a.secretKey).key;
  const ba = discoSharedKey(a.publicKey, b.secretKey).key;
  const ep = { address: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 5]), port: 41641 };
  const msgs: DiscoMessage[] = [
    { type: 'ping', txid: new Uint8Array(12).fill(1), nodeKey: new Uint8Array(32).fill(2) },
    { type: 'pong', txid: new Uint8Array(12).fill(3), src: ep },
    { type: 'call-me-maybe', endpoints: [ep, ep, ep] },
    { type: 'features', flags: 1 },
  ];
  const now = Date.now();
  const payloads = msgs.map((m, i) => encodeDiscoPayload(m, now * 1000 + i));
  const sealed = payloads.map((p) => sealDisco(p, a.publicKey, ab));
  const window = new DiscoReplayWindow();
  const accepted = new Set<number>();
  let newest = 0;
  return {
    name: 'disco',
    corpus: [...sealed, ...payloads],
    run(input) {
      if (isDiscoPacket(input)) {
        let opened = false;
        rejects(() => { openDisco(input, ba); opened = true; });
        // The sender key field picks the box key (the receiver looks it up); nonce and box are what is authenticated.
        const sealedPart = (x: Uint8Array) => x.subarray(DISCO_MAGIC.length + DISCO_KEY_LEN);
        if (opened) invariant(sealed.some((s) => bytesEqual(sealedPart(s), sealedPart(input))), 'a forged disco packet opened');
      }
      rejects(() => decodeDiscoPayload(input));
      // The replay window as a state machine: read a sent-at near now from the input.
      if (input.length >= 4) {
        const off = new DataView(input.buffer, input.byteOffset, 4).getInt32(0) % (3 * REORDER_US);
        const v = now * 1000 + 10 * REORDER_US + off;
        if (window.accept(v, now) === 'ok') {
          invariant(!accepted.has(v), 'the replay window accepted a value twice');
          invariant(v >= newest - REORDER_US, 'the replay window accepted a value behind its span');
          accepted.add(v);
          newest = Math.max(newest, v);
        }
      }
    },
  };
}

export function stun(): FuzzTarget {
  const tid = new Uint8Array(12).fill(5);
  return {
    name: 'stun',
    corpus: [
      encodeBindingRequest({ transactionId: tid }).bytes,
      encodeBindingRequest({ transactionId: tid, changeIp: true, changePort: true, padTo: 128 }).bytes,
      encodeBindingSuccess({ transactionId: tid, mapped: { address: '198.51.100.7', port: 40000 }, responseOrigin: { address: '203.0.113.10', port: 3478 }, otherAddress: { address: '192.0.2.10', port: 3479 }, software: 'x' }),
      encodeBindingSuccess({ transactionId: tid, mapped: { address: '2001:db8::1', port: 1 } }),
      encodeBindingError({ transactionId: tid, code: 420, reason: 'Unknown Attribute', unknownAttributes: [0x27, 0x3] }),
      encodeStunMessage({ method: METHOD_BINDING, class: 'request', transactionId: tid, responsePort: 9, padding: 10 }),
    ],
    run(input) {
      const looks = isStunMessage(input);
      let ok = false;
      rejects(() => { decodeStunMessage(input); ok = true; });
      if (ok) invariant(looks, 'decodeStunMessage accepted what isStunMessage refuses');
    },
  };
}

export function relayFrames(): FuzzTarget {
  const key = new Uint8Array(32).fill(9);
  const frames: RelayFrame[] = [
    { type: 'server-key', version: 2, serverKey: key, challenge: new Uint8Array(32) },
    { type: 'client-info', version: 2, nodeKey: key, clientNonce: new Uint8Array(32).fill(3), proof: new Uint8Array(16) },
    { type: 'server-info', keepaliveMs: 30000, idleTimeoutMs: 60000, rateBytesPerSec: 1, rateBurstBytes: 2, relayProof: new Uint8Array(16) },
    { type: 'send', priority: true, dst: key, data: new Uint8Array(100).fill(1) },
    { type: 'recv', src: key, data: new Uint8Array(40) },
    { type: 'keepalive' },
    { type: 'peer-gone', nodeKey: key, reason: 'not-here' },
    { type: 'ping', data: new Uint8Array(8) },
    { type: 'notice', code: 1, message: 'hello' },
  ];
  const encoded = frames.map(encodeRelayFrame);
  const stream = Uint8Array.from(encoded.flatMap((f) => [...f]));
  const reader = { r: new RelayFrameReader(4096) };
  let seed = 1;
  return {
    name: 'relay-frames',
    corpus: [...encoded, stream],
    run(input) {
      if (input.length >= FRAME_HEADER_LEN) rejects(() => decodeRelayFrame(input[0]!, input.subarray(FRAME_HEADER_LEN)));
      // The reader over the input cut into chunks: frames come out whole, and every byte fed is
      // either in a frame or still buffered (nothing invented, nothing lost).
      let out = 0;
      const before = reader.r.buffered;
      seed = (seed * 1103515245 + 12345) >>> 0;
      const ok = rejects(() => {
        for (let at = 0; at < input.length;) {
          const n = 1 + ((seed >>> (at & 15)) % 97);
          reader.r.push(input.subarray(at, at + n), (type, payload, frame) => {
            invariant(frame.length === payload.length + FRAME_HEADER_LEN && frame[0] === type, 'a frame and its payload disagree');
            out += frame.length;
            rejects(() => decodeRelayFrame(type, payload));
          });
          at += n;
        }
      });
      if (ok) invariant(out + reader.r.buffered === before + input.length, `reader: ${before} buffered + ${input.length} fed != ${out} out + ${reader.r.buffered} buffered`);
      if (!ok || reader.r.buffered > 8192) reader.r = new RelayFrameReader(4096);
    },
  };
}

/**
 * What a peer relay sends on the mesh: every mesh frame, the forward-run among them. The decoder
 * throws only DecodeError, the dialled relay's fast forward-run check agrees with it, and what the
 * decoder accepts re-encodes to the same bytes.
 */
export function relayMeshFrames(): FuzzTarget {
  const key = new Uint8Array(32).fill(7);
  const frames: MeshFrame[] = [
    { type: 'mesh-hello', version: 2, relayKey: key, nonce: new Uint8Array(32).fill(1), keyProof: new Uint8Array(16), meshProof: new Uint8Array(16).fill(2) },
    { type: 'mesh-welcome', keyProof: new Uint8Array(16), meshProof: new Uint8Array(16) },
    { type: 'presence', entries: [{ connected: true, nodeKey: key }, { connected: false, nodeKey: key }] },
    { type: 'forward', priority: false, dst: key, src: key, data: new Uint8Array(60).fill(4) },
    { type: 'forward-run', priority: false, dst: key, packets: [{ src: key, data: new Uint8Array(30).fill(5) }, { src: key, data: new Uint8Array(0) }, { src: key, data: new Uint8Array(9) }] },
  ];
  return {
    name: 'relay-mesh-frames',
    corpus: frames.map(encodeMeshFrame),
    run(input) {
      if (input.length < FRAME_HEADER_LEN) return;
      const type = input[0]!;
      const payload = input.subarray(FRAME_HEADER_LEN);
      let f: MeshFrame | null = null;
      rejects(() => { f = decodeMeshFrame(type, payload); });
      if (type === MESH_FRAME.FORWARD_RUN) invariant((forwardRunPackets(payload) >= 1) === (f !== null), 'forwardRunPackets and decodeMeshFrame disagree');
      if (f !== null) {
        const again = encodeMeshFrame(f);
        invariant(Buffer.from(again.subarray(FRAME_HEADER_LEN)).equals(Buffer.from(payload)) && again[0] === type, 'a decoded mesh frame re-encodes to other bytes');
      }
    },
  };
}
