// The relay's STUN responder is no reflector: it answers only to the request's source, never
// with more bytes than the request had (optional attributes are dropped to fit, too-small
// requests get no answer), and counts what it refused. Real UDP on loopback.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { createRelayCounters } from '../../relay/counters.js';
import { silentLogger } from '../../relay/log.js';
import { startStunResponder, type StunResponder } from '../../relay/stun-responder.js';
import { encodeBindingRequest, PADDED_REQUEST_LEN } from '../../proto/stun/binding.js';
import { decodeStunMessage, encodeStunMessage, METHOD_BINDING } from '../../proto/stun/message.js';

let server: StunResponder;
const counters = createRelayCounters().stun;
let sock: Socket;

before(async () => {
  server = await startStunResponder({ addresses: [{ address: '127.0.0.1', port: 0 }, { address: '127.0.0.2', port: 0 }], counters, logger: silentLogger() });
  sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
});

after(async () => {
  sock.close();
  await server.close();
});

/** Sends bytes to the primary address and collects what comes back within ms. */
async function ask(bytes: Uint8Array, ms = 150): Promise<Buffer[]> {
  const got: Buffer[] = [];
  const on = (m: Buffer) => { got.push(m); };
  sock.on('message', on);
  sock.send(bytes, server.addresses[0]!.port, server.addresses[0]!.address);
  await new Promise((r) => setTimeout(r, ms));
  sock.off('message', on);
  return got;
}

test('a padded request gets the full RFC 5780 answer, no larger than the request', async () => {
  const { bytes } = encodeBindingRequest({ padTo: PADDED_REQUEST_LEN });
  assert.ok(bytes.length >= PADDED_REQUEST_LEN);
  const [answer] = await ask(bytes);
  assert.ok(answer, 'answered');
  assert.ok(answer.length <= bytes.length, `${answer.length} > ${bytes.length}`);
  const m = decodeStunMessage(answer);
  assert.equal(m.class, 'success');
  assert.equal(m.xorMappedAddress?.port, sock.address().port);
  assert.ok(m.otherAddress && m.responseOrigin, 'RFC 5780 attributes present');
  assert.equal(m.software, 'pinhole relay');
});

test('a bare 28-byte request gets no answer at all, and is counted', async () => {
  const before = counters.tooSmall;
  const { bytes } = encodeBindingRequest();
  assert.equal(bytes.length, 28);
  assert.deepEqual(await ask(bytes), []);
  assert.equal(counters.tooSmall, before + 1);
});

test('a request just large enough gets the answer without SOFTWARE', async () => {
  // XOR-MAPPED + RESPONSE-ORIGIN + OTHER-ADDRESS (IPv4, 12 bytes each) + FINGERPRINT = 64 bytes.
  const bytes = encodeStunMessage({ method: METHOD_BINDING, class: 'request', transactionId: new Uint8Array(12).fill(3), padding: 40 }, { fingerprint: false });
  assert.equal(bytes.length, 64);
  const [answer] = await ask(bytes);
  assert.ok(answer, 'answered');
  assert.equal(answer.length, 64);
  assert.equal(decodeStunMessage(answer).software, undefined);
});

test('for every request size from 20 to 160 bytes the answer is never larger', async () => {
  let answered = 0;
  for (let pad = 0; pad <= 140; pad += 4) {
    const bytes = encodeStunMessage({ method: METHOD_BINDING, class: 'request', transactionId: new Uint8Array(12).fill(pad & 0xff), ...(pad ? { padding: pad - 4 } : {}) }, { fingerprint: false });
    for (const a of await ask(bytes, 40)) {
      assert.ok(a.length <= bytes.length, `request of ${bytes.length} got ${a.length}`);
      answered++;
    }
  }
  assert.ok(answered > 20, `${answered} answered`);
});

test('errors obey the same rule: a tiny unknown-method request gets nothing', async () => {
  const bytes = encodeStunMessage({ method: 0x002, class: 'request', transactionId: new Uint8Array(12).fill(9) }, { fingerprint: false });
  const before = counters.tooSmall;
  assert.deepEqual(await ask(bytes), []);
  assert.equal(counters.tooSmall, before + 1);
  const padded = encodeStunMessage({ method: 0x002, class: 'request', transactionId: new Uint8Array(12).fill(9), padding: 200 });
  const [err] = await ask(padded);
  assert.ok(err && err.length <= padded.length);
  assert.equal(decodeStunMessage(err).errorCode?.code, 400);
});
