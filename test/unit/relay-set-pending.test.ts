// What the relay set holds for a relay that is not connected yet (agent/magicsock/relay-set.ts):
// bounded in bytes as well as packets, since a relay train is up to 64 KiB.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import pino from 'pino';
import { PENDING_MAX_BYTES, RelaySet } from '../../agent/magicsock/relay-set.js';
import { encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';

test('packets for a relay that does not answer are held up to PENDING_MAX_BYTES, not 40 of 60 KB', async () => {
  // A port that accepts TCP and never answers the WebSocket upgrade: the relay stays "connecting".
  const silent = createServer(() => undefined);
  await new Promise<void>((res) => silent.listen(0, '127.0.0.1', res));
  const port = (silent.address() as { port: number }).port;
  const set = new RelaySet({ nodePrivateKey: generatePrivateKey(), log: pino({ level: 'silent' }), onRecv: () => undefined, onHomeChange: () => undefined });
  try {
    set.setRelays([{ name: 'r', url: `ws://127.0.0.1:${port}/relay`, stun: [], key: encodeKey(publicKeyFromPrivate(generatePrivateKey())) }]);
    const dst = publicKeyFromPrivate(generatePrivateKey());
    for (let i = 0; i < 40; i++) assert.equal(set.send('r', dst, Buffer.alloc(60_000, i)), true);
    const st = set.status().find((r) => r.name === 'r')!;
    assert.equal(st.connected, false);
    assert.ok(st.pendingBytes <= PENDING_MAX_BYTES && st.pendingBytes > PENDING_MAX_BYTES - 60_000, `held ${st.pendingBytes} bytes`);
  } finally {
    await set.close();
    silent.close();
  }
});
