// `pinhole agent --config FILE.conf`: wg-quick style files parse into a typed config, and every
// mistake is one ConfigError line naming FILE:LINE.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { ConfigError, loadWgQuickConfig, parseWgQuickConfig } from '../../agent/config/wg-quick.js';
import { formatCidr } from '../../proto/ip/address.js';
import { encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';

const ourPriv = generatePrivateKey();
const ourPub = publicKeyFromPrivate(ourPriv);
const PRIV = encodeKey(ourPriv);
const PUB1 = encodeKey(publicKeyFromPrivate(generatePrivateKey()));
const PUB2 = encodeKey(publicKeyFromPrivate(generatePrivateKey()));
const PSK = encodeKey(generatePrivateKey());

const parse = (lines: string[]) => parseWgQuickConfig(lines.join('\n'), 'wg0.conf');

/** Asserts that parsing fails with exactly this message (after "wg0.conf:"). */
function assertError(lines: string[], message: string): void {
  assert.throws(
    () => parse(lines),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
      assert.equal(err.message, `wg0.conf${message}`);
      return true;
    },
  );
}

test('a full config: comments, blank lines, any key case, repeated lists, CRLF', () => {
  const text = [
    '# pinhole static config',
    '[Interface]',
    `  privatekey   =   ${PRIV}   # our key`,
    'Address = 100.64.0.1/10, fd7a:115c:a1e0::1/48',
    'ADDRESS = 10.9.0.1',
    'ListenPort = 51820',
    'MTU = 1420',
    'DNS = 1.1.1.1',
    'PostUp = iptables -A FORWARD -i %i -j ACCEPT',
    'SaveConfig = true',
    '',
    '; an INI-style comment',
    '[peer]',
    `PublicKey = ${PUB1}`,
    `PresharedKey = ${PSK}`,
    'AllowedIPs = 100.64.0.2/32, 10.1.2.3/16',
    'AllowedIPs = fd7a:115c:a1e0::2/128',
    'Endpoint = [fd00::1]:51820',
    'PersistentKeepalive = 25',
    '',
    '[Peer]',
    `PublicKey=${PUB2}`,
    'Endpoint=vpn.example.com:4500',
    'AllowedIPs=',
  ].join('\r\n');
  const cfg = parseWgQuickConfig(text, 'wg0.conf');
  assert.deepEqual(cfg.interface.privateKey, ourPriv);
  assert.deepEqual(cfg.interface.addresses.map(formatCidr), ['100.64.0.1/10', 'fd7a:115c:a1e0::1/48', '10.9.0.1/32']);
  assert.equal(cfg.interface.listenPort, 51820);
  assert.equal(cfg.interface.mtu, 1420);
  assert.equal(cfg.peers.length, 2);
  const [a, b] = cfg.peers;
  assert.equal(encodeKey(a!.publicKey), PUB1);
  assert.equal(encodeKey(a!.presharedKey!), PSK);
  assert.deepEqual(a!.allowedIps.map(formatCidr), ['100.64.0.2/32', '10.1.0.0/16', 'fd7a:115c:a1e0::2/128']);
  assert.deepEqual(a!.endpoint, { host: 'fd00::1', port: 51820 });
  assert.equal(a!.persistentKeepalive, 25);
  assert.equal(a!.line, 13);
  assert.equal(encodeKey(b!.publicKey), PUB2);
  assert.deepEqual(b!.endpoint, { host: 'vpn.example.com', port: 4500 });
  assert.deepEqual(b!.allowedIps, []);
  assert.equal(b!.presharedKey, undefined);
  assert.equal(b!.persistentKeepalive, undefined);
  assert.deepEqual(cfg.warnings, [
    'wg0.conf:8: ignoring DNS (a wg-quick setting pinhole does not apply)',
    'wg0.conf:9: ignoring PostUp (a wg-quick setting pinhole does not apply)',
    'wg0.conf:10: ignoring SaveConfig (a wg-quick setting pinhole does not apply)',
  ]);
});

test('a minimal config: just a private key, no peers, nothing optional set', () => {
  const cfg = parse(['[Interface]', `PrivateKey = ${PRIV}`]);
  assert.deepEqual(cfg, { interface: { privateKey: ourPriv, addresses: [] }, peers: [], warnings: [] });
});

test('PersistentKeepalive: "off" and 0 mean none; Table/FwMark/Pre*/Post* are warnings', () => {
  const cfg = parse([
    '[Interface]', `PrivateKey = ${PRIV}`, 'Table = off', 'FwMark = 0x1', 'PreUp = true', 'PreDown = true', 'PostDown = true',
    '[Peer]', `PublicKey = ${PUB1}`, 'PersistentKeepalive = off',
    '[Peer]', `PublicKey = ${PUB2}`, 'PersistentKeepalive = 0',
  ]);
  assert.equal(cfg.peers[0]!.persistentKeepalive, undefined);
  assert.equal(cfg.peers[1]!.persistentKeepalive, undefined);
  assert.equal(cfg.warnings.length, 5);
  assert.equal(parse(['[Interface]', `PrivateKey = ${PRIV}`, '[Peer]', `PublicKey = ${PUB1}`, 'PersistentKeepalive = OFF']).peers[0]!.persistentKeepalive, undefined);
});

test('AllowedIPs are masked and deduplicated; a prefix claimed twice goes to the later peer', () => {
  const cfg = parse([
    '[Interface]', `PrivateKey = ${PRIV}`,
    '[Peer]', `PublicKey = ${PUB1}`, 'AllowedIPs = 10.0.0.7/24, 10.0.0.0/24, 10.5.0.0/16',
    '[Peer]', `PublicKey = ${PUB2}`, 'AllowedIPs = 10.5.1.1/16',
  ]);
  assert.deepEqual(cfg.peers[0]!.allowedIps.map(formatCidr), ['10.0.0.0/24']);
  assert.deepEqual(cfg.peers[1]!.allowedIps.map(formatCidr), ['10.5.0.0/16']);
  assert.deepEqual(cfg.warnings, ['wg0.conf:8: 10.5.0.0/16 is also in AllowedIPs of the [Peer] at line 3; the later peer gets it (as in wg)']);
});

test('every kind of mistake is a ConfigError naming the line', () => {
  const iface = ['[Interface]', `PrivateKey = ${PRIV}`];
  const peer = ['[Peer]', `PublicKey = ${PUB1}`];
  assertError([...iface, 'Foo = bar'], ':3: unknown key "Foo" in [Interface]');
  assertError([...iface, ...peer, 'DNS = 1.1.1.1'], ':5: unknown key "DNS" in [Peer]');
  assertError([...iface, 'ListenPort = abc'], ':3: bad value for ListenPort: "abc" (expected 0-65535)');
  assertError([...iface, 'ListenPort = 65536'], ':3: bad value for ListenPort: "65536" (expected 0-65535)');
  assertError([...iface, 'ListenPort ='], ':3: bad value for ListenPort: "" (expected 0-65535)');
  assertError([...iface, 'MTU = 1500 bytes'], ':3: bad value for MTU: "1500 bytes" (expected 68-65535)');
  assertError([...iface, 'MTU = 1200', 'Address = fd00::1/64'], ':3: bad value for MTU: 1200 (IPv6 needs 1280-65535)');
  assertError([...iface, 'Address = 10.0.0.1/33'], ':3: bad value for Address: "10.0.0.1/33" (expected an IP address with optional /prefix)');
  assertError([...iface, 'Address = 10.0.0.1/24,,10.0.0.2'], ':3: bad value for Address: "10.0.0.1/24,,10.0.0.2" (empty item in the list)');
  assertError([...iface, ...peer, 'AllowedIPs = 0.0.0.0/0, ::/0, everything'], ':5: bad value for AllowedIPs: "everything" (expected an IP address with optional /prefix)');
  assertError([...iface, ...peer, 'Endpoint = 1.2.3.4'], ':5: bad value for Endpoint: "1.2.3.4" (expected host:port or [IPv6]:port; endpoint "1.2.3.4" has no port (expected host:port))');
  assertError([...iface, ...peer, 'Endpoint = fd00::1:51820'], ':5: bad value for Endpoint: "fd00::1:51820" (expected host:port or [IPv6]:port; IPv6 endpoint "fd00::1:51820" needs brackets: [addr]:port)');
  assertError([...iface, ...peer, 'PersistentKeepalive = sometimes'], ':5: bad value for PersistentKeepalive: "sometimes" (expected 0-65535 or "off")');
  assertError(['[Interface]', 'PrivateKey = hunter2'], ':2: bad value for PrivateKey (expected a 44-character base64 key as printed by "wg genkey")');
  assertError([...iface, '[Peer]', `PublicKey = ${PUB1.slice(1)}`], ':4: bad value for PublicKey (expected a 44-character base64 key as printed by "wg genkey")');
  assertError([...iface, ...peer, 'PresharedKey = x'], ':5: bad value for PresharedKey (expected a 44-character base64 key as printed by "wg genkey")');
  assertError([...iface, 'ListenPort = 1', 'listenport = 2'], ':4: duplicate ListenPort (first set at line 3)');
  assertError([...iface, ...peer, `PublicKey = ${PUB2}`], ':5: duplicate PublicKey (first set at line 4)');
  assertError([...iface, '[Interface]'], ':3: duplicate [Interface] section (first at line 1)');
  assertError([...iface, '[Peers]'], ':3: unknown section "[Peers]" (expected [Interface] or [Peer])');
  assertError([...iface, '[Peer'], ':3: unknown section "[Peer" (expected [Interface] or [Peer])');
  assertError(['PrivateKey = x', ...iface], ':1: "PrivateKey" before any section (expected [Interface] or [Peer] first)');
  assertError([...iface, 'just some words'], ':3: expected "Key = Value" or a [Section] header, got "just some words"');
  assertError([...iface, '= value'], ':3: missing key before "=" in "= value"');
  assertError(['[Interface]', 'ListenPort = 1'], ':1: [Interface] has no PrivateKey');
  assertError(['# nothing here', ''], ': no [Interface] section');
  assertError([...iface, '[Peer]', 'AllowedIPs = 10.0.0.0/8', '[Peer]', `PublicKey = ${PUB2}`], ':3: [Peer] has no PublicKey');
  assertError(['[Peer]', `PublicKey = ${PUB2}`, '[Peer]', '[Interface]', `PrivateKey = ${PRIV}`], ':3: [Peer] has no PublicKey');
  assertError([...iface, ...peer, '[Peer]', `PublicKey = ${PUB1}`], ':6: duplicate peer PublicKey (already used by the [Peer] at line 3)');
  assertError([...iface, '[Peer]', `PublicKey = ${encodeKey(ourPub)}`], ':4: peer PublicKey is this interface\'s own public key (PrivateKey at line 2)');
});

test('secret key text never appears in an error message', () => {
  const almost = `${PRIV.slice(0, 42)}B=`;
  try {
    parse(['[Interface]', `PrivateKey = ${almost}`]);
    assert.fail('should throw');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.ok(!err.message.includes(almost.slice(0, 20)));
  }
});

test('loadWgQuickConfig reads a file and names it in errors', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pinhole-wgquick-'));
  try {
    const path = join(dir, 'wg0.conf');
    await writeFile(path, `\uFEFF[Interface]\nPrivateKey = ${PRIV}\n`);
    assert.deepEqual((await loadWgQuickConfig(path)).interface.privateKey, ourPriv);
    await writeFile(path, '[Interface]\nMTU = big\n');
    await assert.rejects(loadWgQuickConfig(path), { name: 'ConfigError', message: `${path}:2: bad value for MTU: "big" (expected 68-65535)` });
    const missing = join(dir, 'nope.conf');
    await assert.rejects(loadWgQuickConfig(missing), (err: unknown) => err instanceof ConfigError && err.message.startsWith(`${missing}: cannot read: ENOENT`));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const validLines = ['[Interface]', `PrivateKey = ${PRIV}`, 'Address = 10.0.0.1/24', '[Peer]', `PublicKey = ${PUB1}`, 'AllowedIPs = 10.0.0.2/32'];
// Lines built from config-ish pieces, so garbage is often nearly valid (the interesting case).
const piece = fc.constantFrom('[', ']', 'Interface', 'Peer', '=', ' ', ',', '#', ';', 'ListenPort', 'MTU', 'Address', 'AllowedIPs', 'Endpoint', 'PublicKey', 'PersistentKeepalive', 'DNS', 'off', '0', '65536', '10.0.0.0/8', '::/0', '[::1]:1', 'a.b:1', PUB2, PSK, '\t', '\u00a0', 'é', '\r', '\n', '\0');
const configish = fc.array(piece, { maxLength: 8 }).map((ps) => ps.join(''));
const garbageLine = fc.oneof(configish, fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 30 }));

test('fuzz: a random line anywhere yields a config or a one-line ConfigError naming a line', () => {
  fc.assert(
    fc.property(garbageLine, fc.nat(validLines.length), (line, at) => {
      const lines = [...validLines];
      lines.splice(at, 0, line);
      try {
        parse(lines);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        assert.match(err.message, /^wg0\.conf:\d+: /);
        assert.ok(!err.message.includes('\n'));
      }
      return true;
    }),
    { numRuns: 100_000 },
  );
});

test('fuzz: a line that is not a comment, section or "key = value" is an error on that line', () => {
  const noEquals = fc.string({ minLength: 1, maxLength: 30 }).filter((s) => {
    const body = s.split(/[#;]/)[0]!.trim();
    return !/[=\r\n]/.test(s) && body !== '' && !body.startsWith('[');
  });
  fc.assert(
    fc.property(noEquals, fc.integer({ min: 1, max: validLines.length }), (line, at) => {
      const lines = [...validLines];
      lines.splice(at, 0, line);
      assert.throws(() => parse(lines), (err: unknown) => err instanceof ConfigError && err.line === at + 1);
      return true;
    }),
    { numRuns: 100_000 },
  );
});
