// IP address, CIDR and endpoint text: strict parsing, canonical formatting, and fuzzing that
// shows bad text only ever yields DecodeError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import fc from 'fast-check';
import { DecodeError } from '../../proto/errors.js';
import {
  cidrContains,
  formatAddress,
  formatCidr,
  formatEndpoint,
  maskCidr,
  parseAddress,
  parseCidr,
  parseEndpoint,
  tryParseAddress,
} from '../../proto/ip/address.js';

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);

function assertDecodeError(fn: () => unknown, code?: string): void {
  assert.throws(fn, (err: unknown) => err instanceof DecodeError && (code === undefined || err.code === code));
}

test('parses IPv4 dotted quads and refuses near misses', () => {
  assert.deepEqual(parseAddress('100.64.0.1'), { family: 4, bytes: bytes(100, 64, 0, 1) });
  assert.deepEqual(parseAddress('0.0.0.0').bytes, bytes(0, 0, 0, 0));
  assert.deepEqual(parseAddress('255.255.255.255').bytes, bytes(255, 255, 255, 255));
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.4 ', ' 1.2.3.4', '1..3.4', '1.2.3.-4', '0x1.2.3.4', '1.2.3.4/', '１.2.3.4']) {
    assertDecodeError(() => parseAddress(bad), 'bad-syntax');
  }
});

test('parses IPv6 in all RFC 4291 text forms', () => {
  const cases: Array<[string, string]> = [
    ['::', '00000000000000000000000000000000'],
    ['::1', '00000000000000000000000000000001'],
    ['fd00::1', 'fd000000000000000000000000000001'],
    ['FD00:0:0:0:0:0:0:1', 'fd000000000000000000000000000001'],
    ['2001:db8:85a3::8a2e:370:7334', '20010db885a3000000008a2e03707334'],
    ['1::', '00010000000000000000000000000000'],
    ['::ffff:1.2.3.4', '00000000000000000000ffff01020304'],
    ['1:2:3:4:5:6:1.2.3.4', '00010002000300040005000601020304'],
    ['1:2:3:4:5:6:7::', '00010002000300040005000600070000'],
    ['::2:3:4:5:6:7:8', '00000002000300040005000600070008'],
  ];
  for (const [text, hex] of cases) {
    const a = parseAddress(text);
    assert.equal(a.family, 6, text);
    assert.equal(Buffer.from(a.bytes).toString('hex'), hex, text);
  }
  for (const bad of [':', ':::', '1:::2', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', 'g::', '::1.2.3', '1.2.3.4::', '1:2:3:4:5:6:7:8::', ':1::', '1::2:', 'fe80::1%eth0', '[::1]']) {
    assertDecodeError(() => parseAddress(bad));
  }
});

test('formats addresses canonically (RFC 5952)', () => {
  const cases: Array<[string, string]> = [
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a lone zero group stays
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run wins
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // ties: the first run
    ['0:0:0:0:0:0:0:0', '::'],
    ['FD00::ABCD', 'fd00::abcd'],
    ['::ffff:10.1.2.3', '::ffff:10.1.2.3'],
    ['1:0:0:0:0:0:0:0', '1::'],
  ];
  for (const [input, want] of cases) assert.equal(formatAddress(parseAddress(input).bytes), want);
  assert.equal(formatAddress(bytes(10, 0, 0, 1)), '10.0.0.1');
  assert.throws(() => formatAddress(bytes(1, 2, 3)), RangeError);
});

test('CIDRs keep host bits; a bare address is a host prefix; maskCidr canonicalises', () => {
  const c = parseCidr('100.64.0.1/10');
  assert.deepEqual(c, { family: 4, bytes: bytes(100, 64, 0, 1), bits: 10 });
  assert.equal(formatCidr(maskCidr(c)), '100.64.0.0/10');
  assert.equal(formatCidr(c), '100.64.0.1/10');
  assert.equal(parseCidr('10.0.0.1').bits, 32);
  assert.equal(parseCidr('fd00::1').bits, 128);
  assert.equal(parseCidr('0.0.0.0/0').bits, 0);
  assert.equal(formatCidr(maskCidr(parseCidr('fd7a:115c:a1e0:ab12:4843:cd96:6258:b240/48'))), 'fd7a:115c:a1e0::/48');
  assert.equal(formatCidr(maskCidr(parseCidr('255.255.255.255/0'))), '0.0.0.0/0');
  assert.equal(formatCidr(maskCidr(parseCidr('::/128'))), '::/128');
  for (const bad of ['10.0.0.0/33', 'fd00::/129', '10.0.0.0/-1', '10.0.0.0/08', '10.0.0.0/', '10.0.0.0/8/8', '/8', '10.0.0.0 /8', 'x/8']) {
    assertDecodeError(() => parseCidr(bad));
  }
});

test('cidrContains reads an address at an offset', () => {
  const c = parseCidr('10.1.0.0/23');
  assert.equal(cidrContains(c, bytes(9, 9, 10, 1, 1, 255), 2), true);
  assert.equal(cidrContains(c, bytes(10, 1, 2, 0)), false);
  assert.equal(cidrContains(parseCidr('0.0.0.0/0'), bytes(1, 2, 3, 4)), true);
  assert.equal(cidrContains(parseCidr('fd00::/8'), parseAddress('fdff::1').bytes), true);
  assert.equal(cidrContains(parseCidr('fd00::/8'), parseAddress('fe00::1').bytes), false);
});

test('endpoints: IPv4, bracketed IPv6 (with zone), hostnames; port 1-65535', () => {
  assert.deepEqual(parseEndpoint('1.2.3.4:51820'), { host: '1.2.3.4', port: 51820 });
  assert.deepEqual(parseEndpoint('[fd00::1]:51820'), { host: 'fd00::1', port: 51820 });
  assert.deepEqual(parseEndpoint('[fe80::1%eth0]:1'), { host: 'fe80::1%eth0', port: 1 });
  assert.deepEqual(parseEndpoint('vpn.example.com:65535'), { host: 'vpn.example.com', port: 65535 });
  assert.deepEqual(parseEndpoint('localhost:5'), { host: 'localhost', port: 5 });
  assert.deepEqual(parseEndpoint('relay-1.example.:443'), { host: 'relay-1.example.', port: 443 });
  assert.equal(formatEndpoint({ host: 'fd00::1', port: 7 }), '[fd00::1]:7');
  assert.equal(formatEndpoint({ host: '1.2.3.4', port: 7 }), '1.2.3.4:7');
  const bad: Array<[string, string]> = [
    ['1.2.3.4', 'bad-syntax'],
    ['1.2.3.4:0', 'bad-value'],
    ['1.2.3.4:65536', 'bad-value'],
    ['1.2.3.4:', 'bad-value'],
    ['1.2.3.4:x', 'bad-value'],
    ['1.2.3.4:080', 'bad-value'],
    ['fd00::1:51820', 'bad-syntax'],
    ['[fd00::1]51820', 'bad-syntax'],
    ['[fd00::1', 'bad-syntax'],
    ['[1.2.3.4]:5', 'bad-syntax'],
    ['[fe80::1%]:5', 'bad-syntax'],
    ['1.2.3.256:5', 'bad-syntax'],
    ['-bad.example:5', 'bad-syntax'],
    ['a..b:5', 'bad-syntax'],
    [':5', 'bad-syntax'],
    ['host name:5', 'bad-syntax'],
    [`${'a'.repeat(64)}.example:5`, 'bad-syntax'],
    ['x'.repeat(400), 'oversized'],
  ];
  for (const [text, code] of bad) assertDecodeError(() => parseEndpoint(text), code);
});

test('non-strings are refused with DecodeError, not TypeError', () => {
  assertDecodeError(() => parseAddress(42 as unknown as string), 'bad-type');
  assertDecodeError(() => parseCidr(undefined as unknown as string), 'bad-type');
  assertDecodeError(() => parseEndpoint(null as unknown as string), 'bad-type');
  assert.equal(tryParseAddress({} as unknown as string), null);
});

// Text made of the pieces addresses are made of, so the fuzzer hits near misses, not just noise.
const addressish = fc
  .array(fc.constantFrom('0', '1', '9', '00', '01', '255', '256', 'a', 'f', 'F', 'ffff', 'g', '12345', ':', '::', '.', '/', '%', '[', ']', 'x', ' ', '-', '32', '128'), { maxLength: 20 })
  .map((parts) => parts.join(''));
const octet = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 255 }).map(String) },
  { weight: 1, arbitrary: fc.constantFrom('00', '01', '256', '1000', '', ' 1', 'a', '-1') },
);
const dotted = fc.array(octet, { minLength: 3, maxLength: 5 }).map((parts) => parts.join('.'));
const group = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16)) },
  { weight: 3, arbitrary: fc.constant('') },
  { weight: 1, arbitrary: fc.constantFrom('FFFF', 'fFf0', '0000', '12345', 'g', '00000') },
  { weight: 1, arbitrary: dotted },
);
const colons = fc.array(group, { minLength: 2, maxLength: 10 }).map((parts) => parts.join(':'));
const withPrefix = fc.tuple(fc.oneof(dotted, colons), fc.constantFrom('', '/0', '/32', '/33', '/128', '/', '/01', ':80', ':0', ':65536'))
  .map(([a, b]) => a + b);
const anyText = fc.oneof(addressish, dotted, colons, withPrefix, fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 20 }));

test('fuzz: parsers throw only DecodeError, and agree with node:net on what is an address', () => {
  fc.assert(
    fc.property(anyText, (s) => {
      for (const parse of [parseAddress, parseCidr, parseEndpoint]) {
        try {
          parse(s);
        } catch (err) {
          if (!(err instanceof DecodeError)) throw err;
        }
      }
      const ours = tryParseAddress(s);
      if (!s.includes('%')) assert.equal(ours?.family ?? 0, isIP(s), s);
      return true;
    }),
    { numRuns: 100_000 },
  );
});

test('fuzz: every address formats to text that parses back to the same bytes', () => {
  const v4 = fc.uint8Array({ minLength: 4, maxLength: 4 });
  // Mostly-zero groups exercise the "::" choice.
  const v6 = fc
    .array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
    .map((ws) => Uint8Array.from(ws.flatMap((w) => [w >> 8, w & 0xff])));
  fc.assert(
    fc.property(fc.oneof(v4, v6), fc.nat(128), (b, n) => {
      const text = formatAddress(b);
      assert.ok(b.length === 4 ? isIPv4(text) : isIPv6(text), text);
      assert.deepEqual(parseAddress(text).bytes, b);
      if (b.length === 16 && !text.startsWith('::ffff:')) {
        assert.equal(new URL(`http://[${text}]/`).hostname, `[${text}]`); // WHATWG agrees it is canonical
      }
      const bits = n % (b.length * 8 + 1);
      const c = parseCidr(`${text}/${bits}`);
      assert.equal(formatCidr(c), `${text}/${bits}`);
      assert.ok(cidrContains(maskCidr(c), b));
      return true;
    }),
    { numRuns: 100_000 },
  );
});
