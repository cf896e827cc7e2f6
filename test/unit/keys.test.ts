// Keys as `wg` writes them: base64 round trips, strict decoding, clamping, and real interop with
// wireguard-tools (`wg genkey` / `wg pubkey`) when it is installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import fc from 'fast-check';
import { DecodeError } from '../../proto/errors.js';
import {
  KEY_BASE64_LEN,
  clampPrivateKey,
  decodeKey,
  encodeKey,
  generatePrivateKey,
  publicKeyFromPrivate,
} from '../../proto/wireguard/keys.js';

const WG = ['/usr/bin/wg', '/usr/local/bin/wg'].find((p) => existsSync(p));

/** Runs `wg ARGS` with `input` on stdin and returns its trimmed stdout. */
function wg(args: string[], input = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(WG!, args, { timeout: 5000 }, (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
    child.stdin!.on('error', () => {}); // `wg genkey` exits without reading stdin (EPIPE)
    if (input) child.stdin!.end(input);
    else child.stdin!.end();
  });
}

test('RFC 7748 test vector: Alice\'s public key', () => {
  const priv = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex');
  const pub = publicKeyFromPrivate(priv);
  assert.equal(Buffer.from(pub).toString('hex'), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
});

test('encode/decode round-trip; output is 44 chars with one "="', () => {
  for (let i = 0; i < 200; i++) {
    const key = generatePrivateKey();
    const text = encodeKey(key);
    assert.equal(text.length, KEY_BASE64_LEN);
    assert.match(text, /^[A-Za-z0-9+/]{43}=$/);
    assert.deepEqual(decodeKey(text), key);
    assert.equal(text, Buffer.from(key).toString('base64'));
  }
  assert.throws(() => encodeKey(new Uint8Array(31)), RangeError);
});

test('generated private keys are clamped and differ', () => {
  const a = generatePrivateKey();
  const b = generatePrivateKey();
  assert.notDeepEqual(a, b);
  for (const k of [a, b]) {
    assert.equal(k[0]! & 7, 0);
    assert.equal(k[31]! & 0x80, 0);
    assert.equal(k[31]! & 0x40, 0x40);
  }
});

test('clampPrivateKey clamps in place; X25519 ignores the clamped bits anyway', () => {
  const raw = new Uint8Array(32).fill(0xff);
  const pubUnclamped = publicKeyFromPrivate(raw);
  const same = clampPrivateKey(raw);
  assert.equal(same, raw);
  assert.equal(raw[0], 0xf8);
  assert.equal(raw[31], 0x7f);
  assert.deepEqual(publicKeyFromPrivate(raw), pubUnclamped);
  assert.throws(() => clampPrivateKey(new Uint8Array(33)), RangeError);
  assert.throws(() => publicKeyFromPrivate(new Uint8Array(16)), RangeError);
});

test('decodeKey refuses wrong length, padding, characters and non-canonical tails', () => {
  const good = encodeKey(generatePrivateKey());
  const zeroTail = `${'A'.repeat(42)}A=`;
  assert.deepEqual(decodeKey(zeroTail), new Uint8Array(32));
  const bad: Array<[string, string]> = [
    ['', 'bad-length'],
    [good.slice(0, 43), 'bad-length'],
    [`${good}=`, 'bad-length'],
    [`${good.slice(0, 43)}A`, 'bad-length'], // no '=' padding
    [`${good.slice(0, 42)}==`, 'bad-value'],
    [`${'A'.repeat(42)}B=`, 'bad-value'], // spare bits set: not canonical
    [`${'A'.repeat(42)}/=`, 'bad-value'],
    [`-${good.slice(1)}`, 'bad-value'], // base64url is not wg's alphabet
    [`_${good.slice(1)}`, 'bad-value'],
    [` ${good.slice(1)}`, 'bad-value'],
    [`é${good.slice(1)}`, 'bad-value'],
    [`${String.fromCharCode(0x100 + 0x41)}${good.slice(1)}`, 'bad-value'], // 'A' + 256 must not alias 'A'
  ];
  for (const [text, code] of bad) {
    assert.throws(() => decodeKey(text), (e: unknown) => e instanceof DecodeError && e.code === code, JSON.stringify(text));
  }
  assert.throws(() => decodeKey(7 as unknown as string), (e: unknown) => e instanceof DecodeError && e.code === 'bad-type');
});

test('error messages never echo the key text', () => {
  const secret = `${'Q'.repeat(42)}B=`;
  try {
    decodeKey(secret);
    assert.fail('should throw');
  } catch (err) {
    assert.ok(err instanceof DecodeError);
    assert.ok(!err.message.includes('QQQQ'));
  }
});

test('fuzz: decodeKey accepts exactly canonical 44-char base64 and throws only DecodeError', () => {
  const canonical = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
  const b64char = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ .'.split(''));
  const nearKey = fc.array(b64char, { minLength: 42, maxLength: 45 }).map((cs) => cs.join(''));
  const keyLike = fc.tuple(fc.array(b64char, { minLength: 43, maxLength: 43 }), fc.constantFrom('=', 'A', '')).map(([cs, end]) => cs.join('') + end);
  fc.assert(
    fc.property(fc.oneof(nearKey, keyLike, fc.string({ maxLength: 50 }), fc.string({ unit: 'binary', minLength: 44, maxLength: 44 })), (s) => {
      let key: Uint8Array | undefined;
      try {
        key = decodeKey(s);
      } catch (err) {
        if (!(err instanceof DecodeError)) throw err;
      }
      assert.equal(key !== undefined, canonical.test(s), s);
      if (key) assert.equal(encodeKey(key), s);
      return true;
    }),
    { numRuns: 100_000 },
  );
});

test('fuzz: every 32-byte key round-trips', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (k) => {
      assert.deepEqual(decodeKey(encodeKey(k)), k);
      return true;
    }),
    { numRuns: 100_000 },
  );
});

test('interop: `wg pubkey` agrees with publicKeyFromPrivate both ways', async () => {
  assert.ok(WG, 'wg (wireguard-tools) is required: run scripts/setup.sh');
  for (let i = 0; i < 5; i++) {
    // Ours → wg
    const ours = generatePrivateKey();
    assert.equal(await wg(['pubkey'], `${encodeKey(ours)}\n`), encodeKey(publicKeyFromPrivate(ours)));
    // wg → ours
    const theirs = await wg(['genkey']);
    const priv = decodeKey(theirs);
    assert.deepEqual(clampPrivateKey(Uint8Array.from(priv)), priv, '`wg genkey` output is clamped');
    assert.equal(encodeKey(publicKeyFromPrivate(priv)), await wg(['pubkey'], `${theirs}\n`));
  }
  // wg rejects what we reject: a non-canonical tail.
  await assert.rejects(wg(['pubkey'], `${'A'.repeat(42)}B=\n`));
});
