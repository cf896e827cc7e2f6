// Decoders of datagrams the agent reads out of reused receive slabs (disco and STUN arrive in the
// UDP socket's slab, PCP answers in a dgram Buffer): the byte fields they return must be copies.
// Buffer#slice is a view like subarray, so a field taken that way from a Buffer would change when
// the slot is reused. Each message is decoded out of a slot of one Buffer that is then scribbled over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { decodeDiscoPayload, discoSender, encodeDiscoPayload, sealDisco } from '../../proto/disco/messages.js';
import { discoSharedKey } from '../../agent/magicsock/disco-key.js';
import { encodeBindingSuccess } from '../../proto/stun/binding.js';
import { decodeStunMessage, newTransactionId } from '../../proto/stun/message.js';
import { decodePcpResponse } from '../../proto/portmap/pcp.js';

const SCRIBBLE = 0xee;

/** Copies `bytes` into a reused slot of a slab (behind 16 bytes of headroom) and returns the view. */
function inSlot(slab: Buffer, bytes: Uint8Array): Buffer {
  slab.fill(0);
  slab.set(bytes, 16);
  return slab.subarray(16, 16 + bytes.length);
}

test('discoSender, and the txid, node key and endpoint of a disco payload, outlive the slot they were read from', () => {
  const slab = Buffer.alloc(2048);
  const a = nacl.box.keyPair();
  const b = nacl.box.keyPair();
  const packet = inSlot(slab, sealDisco(encodeDiscoPayload({ type: 'ping', txid: new Uint8Array(12).fill(7), nodeKey: new Uint8Array(32).fill(9) }, 1), a.publicKey, discoSharedKey(b.publicKey, a.secretKey).key));
  const sender = discoSender(packet);
  const ping = decodeDiscoPayload(inSlot(slab, encodeDiscoPayload({ type: 'ping', txid: new Uint8Array(12).fill(7), nodeKey: new Uint8Array(32).fill(9) }, 1))).msg;
  slab.fill(SCRIBBLE);
  const address = Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 5]);
  const pong = decodeDiscoPayload(inSlot(slab, encodeDiscoPayload({ type: 'pong', txid: new Uint8Array(12).fill(1), src: { address, port: 41641 } }, 1))).msg;
  slab.fill(SCRIBBLE);
  assert.deepEqual([...sender], [...a.publicKey]);
  assert.ok(ping.type === 'ping' && pong.type === 'pong');
  assert.deepEqual([...ping.txid], new Array(12).fill(7));
  assert.deepEqual([...ping.nodeKey], new Array(32).fill(9));
  assert.deepEqual([...pong.txid], new Array(12).fill(1));
  assert.deepEqual([...pong.src.address], [...address]);
});

test('a STUN message\'s transaction id outlives the slot it was read from', () => {
  const slab = Buffer.alloc(2048);
  const transactionId = newTransactionId();
  const m = decodeStunMessage(inSlot(slab, encodeBindingSuccess({ transactionId, mapped: { address: '192.0.2.66', port: 6666 } })));
  slab.fill(SCRIBBLE);
  assert.deepEqual([...m.transactionId], [...transactionId]);
  assert.deepEqual(m.xorMappedAddress, { family: 4, address: '192.0.2.66', port: 6666 });
});

test('a PCP MAP answer\'s nonce outlives the buffer it was read from', () => {
  const nonce = Uint8Array.from({ length: 12 }, (_, i) => i + 1);
  const answer = Buffer.alloc(60);
  answer.set([2, 0x81, 0, 0]);
  answer.writeUInt32BE(7200, 4);
  answer.set(nonce, 24);
  answer[36] = 17;
  answer.writeUInt16BE(41641, 40);
  answer.writeUInt16BE(50000, 42);
  answer.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 10], 44);
  const slab = Buffer.alloc(256);
  const r = decodePcpResponse(inSlot(slab, answer));
  slab.fill(SCRIBBLE);
  assert.ok(r.kind === 'map');
  assert.deepEqual([...r.nonce], [...nonce]);
  assert.equal(r.externalAddress, '198.51.100.10');
});
