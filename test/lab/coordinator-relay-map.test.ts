// The relay map a coordinator hands out: `--relay NAME=URL`, `--relay-key NAME=KEY` and
// `--relay-stun NAME=HOST:PORT` reach every node's netmap (a relay without --relay-stun gets its
// URL's host on port 3478), a relay without a key is refused at start, and bad flags are one line
// on stderr with a non-zero exit.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRelayMap } from '../../coordinator/relay-map.js';
import { PINHOLE_BIN } from '../../scripts/tunnels/paths.js';
import { encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';

const newKey = (): string => encodeKey(publicKeyFromPrivate(generatePrivateKey()));
const [K1, K2, K3] = [newKey(), newKey(), newKey()];
import { CoordinatorProcess } from '../helpers/coordinator-process.js';
import { SimulatedNode } from '../helpers/coordinator-node.js';

function pinhole(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [PINHOLE_BIN, ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('coordinator relay map', { timeout: 60_000 }, () => {
  test('nodes get every relay with its STUN servers', async () => {
    const coord = await CoordinatorProcess.start({
      flags: [
        '--relay', 'lab=ws://203.0.113.10:8443/relay', '--relay-stun', 'lab=203.0.113.10:3478', '--relay-stun', 'lab=192.0.2.10:3478',
        '--relay', 'v6=ws://[2001:db8::7]:8443/relay',
        '--relay', 'named=wss://relay.example.net/relay', '--relay-stun', 'named=[2001:db8::9]:3479',
        '--relay-key', `lab=${K1}`, '--relay-key', `v6=${K2}`, '--relay-key', `named=${K3}`,
      ],
    });
    try {
      const node = new SimulatedNode();
      await node.join(coord.url, { authKey: await coord.createAuthKey(), hostname: 'n1' });
      const stream = await node.connect(coord.url);
      try {
        await stream.waitFor('netmap', () => stream.netmap !== null);
        assert.deepEqual(stream.netmap!.relays, [
          { name: 'lab', url: 'ws://203.0.113.10:8443/relay', stun: ['203.0.113.10:3478', '192.0.2.10:3478'], key: K1 },
          { name: 'v6', url: 'ws://[2001:db8::7]:8443/relay', stun: ['[2001:db8::7]:3478'], key: K2 },
          { name: 'named', url: 'wss://relay.example.net/relay', stun: ['[2001:db8::9]:3479'], key: K3 },
        ]);
      } finally {
        stream.terminate();
      }
    } finally {
      await coord.destroy();
    }
  });

  test('a relay named by URL host only gets that host on port 3478; duplicates collapse', () => {
    assert.deepEqual(buildRelayMap(['r=ws://relay.example.net:8443/relay'], [], [`r=${K1}`]), [{ name: 'r', url: 'ws://relay.example.net:8443/relay', stun: ['relay.example.net:3478'], key: K1 }]);
    assert.deepEqual(buildRelayMap(['r=ws://203.0.113.10/relay'], ['r=203.0.113.10:3478', 'r=203.0.113.10:3478'], [`r=${K1}`])[0]!.stun, ['203.0.113.10:3478']);
    assert.throws(() => buildRelayMap(['r=ws://203.0.113.10/relay'], [], ['r=abc']), /--relay-key: r: not a key/);
    assert.throws(() => buildRelayMap(['r=ws://203.0.113.10/relay'], [], [`r=${K1.slice(0, 43)}`]), /--relay-key: r: not a key/);
  });

  test('a relay without --relay-key, and bad --relay / --relay-key / --relay-stun flags: one line on stderr, non-zero exit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pinhole-relaymap-'));
    try {
      const base = ['coordinator', '--listen', '127.0.0.1:0', '--db', join(dir, 'c.db'), '--relay', 'lab=ws://203.0.113.10:8443/relay', '--relay-key', `lab=${K1}`];
      const keyless = await pinhole(['coordinator', '--listen', '127.0.0.1:0', '--db', join(dir, 'k.db'), '--relay', 'lab=ws://203.0.113.10:8443/relay']);
      assert.notEqual(keyless.code, 0);
      assert.equal(keyless.stderr.trim().split('\n').length, 1, keyless.stderr);
      assert.match(keyless.stderr, /--relay lab: no --relay-key lab=KEY \(start the relay with --key-file F: it prints "pinhole relay key KEY"/);
      const cases: [string[], RegExp][] = [
        [['--relay-key', 'lab=not-a-key'], /--relay-key: relay lab is given two keys/],
        [['--relay-key', 'other=' + K2], /--relay-key: no --relay named other/],
        [['--relay-stun', 'other=203.0.113.10:3478'], /--relay-stun: no --relay named other/],
        [['--relay-stun', 'lab=203.0.113.10'], /--relay-stun: .*has no port/],
        [['--relay-stun', 'lab=203.0.113.10:0'], /--relay-stun: bad port/],
        [['--relay-stun', '203.0.113.10:3478'], /--relay-stun: expected NAME=HOST:PORT/],
        [['--relay', 'lab=ws://192.0.2.1/relay'], /--relay: relay lab is given twice/],
      ];
      for (const [args, reason] of cases) {
        const r = await pinhole([...base, ...args]);
        assert.notEqual(r.code, 0, args.join(' '));
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.match(r.stderr, reason);
        assert.equal(r.stdout, '');
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
