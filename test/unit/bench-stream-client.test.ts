// The benchmark's lean WebSocket client (scripts/bench-stream-client.ts) against hand-built
// server frames: fragments come out whole however the bytes are chunked, pings get masked pongs,
// and random or hostile bytes end the stream with a reason instead of throwing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Duplex } from 'node:stream';
import { LeanStream } from '../../scripts/bench-stream-client.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** The client's side of a fake channel: what it writes is collected, what the test pushes it reads. */
class FakeChannel extends Duplex {
  readonly written: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.written.push(chunk);
    cb();
  }
}

function frame(opcode: number, payload: Buffer, fin = true): Buffer {
  const len = payload.length;
  const hdr = len < 126 ? Buffer.from([(fin ? 0x80 : 0) | opcode, len])
    : len < 65536 ? Buffer.from([(fin ? 0x80 : 0) | opcode, 126, len >> 8, len & 255])
      : Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(len)); return b; })()]);
  return Buffer.concat([hdr, payload]);
}

async function opened(): Promise<{ ch: FakeChannel; stream: LeanStream; got: [string, boolean, boolean][]; closed: string[] }> {
  const ch = new FakeChannel();
  const got: [string, boolean, boolean][] = [];
  const closed: string[] = [];
  const p = LeanStream.open(ch, '/api/v1/stream', { onFragment: (d, first, fin) => got.push([d.toString(), first, fin]), onClose: (r) => closed.push(r) });
  const req = ch.written[0]!.toString();
  const key = /Sec-WebSocket-Key: (\S+)/.exec(req)![1]!;
  const accept = createHash('sha1').update(key + GUID).digest('base64');
  ch.push(Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`));
  return { ch, stream: await p, got, closed };
}

test('fragments and whole messages come out in order, however the bytes are chunked', async () => {
  const big = Buffer.alloc(70_000, 'x');
  const wire = Buffer.concat([
    frame(1, Buffer.from('{"type":"delta","seq":1,'), false), frame(0, Buffer.from('"upserts":[]}')),
    frame(1, Buffer.from('hello')), frame(1, big), frame(1, Buffer.alloc(300, 'y')),
  ]);
  for (const step of [1, 3, 7, 1000, 65536, wire.length]) {
    const { ch, got, closed } = await opened();
    for (let at = 0; at < wire.length; at += step) ch.push(wire.subarray(at, at + step));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(got.map(([d, f, fin]) => [d.length, f, fin]), [[24, true, false], [13, false, true], [5, true, true], [70_000, true, true], [300, true, true]], `chunks of ${step}`);
    assert.equal(got[0]![0], '{"type":"delta","seq":1,');
    assert.deepEqual(closed, []);
  }
});

test('a ping is answered with a masked pong carrying its payload; text goes out masked', async () => {
  const { ch, stream } = await opened();
  ch.push(frame(9, Buffer.from('abc')));
  await new Promise((r) => setImmediate(r));
  const pong = ch.written[1]!;
  assert.equal(pong[0], 0x8a);
  assert.equal(pong[1], 0x80 | 3);
  const mask = pong.subarray(2, 6);
  assert.equal(Buffer.from([...pong.subarray(6)].map((b, i) => b ^ mask[i & 3]!)).toString(), 'abc');
  stream.sendText('x'.repeat(200));
  const text = ch.written[2]!;
  assert.deepEqual([text[0], text[1], text.readUInt16BE(2)], [0x81, 0x80 | 126, 200]);
  const m = text.subarray(4, 8);
  assert.equal(Buffer.from([...text.subarray(8)].map((b, i) => b ^ m[i & 3]!)).toString(), 'x'.repeat(200));
});

test('a refused upgrade or a wrong accept key rejects the open', async () => {
  for (const answer of ['HTTP/1.1 401 Unauthorized\r\n\r\n', 'HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n']) {
    const ch = new FakeChannel();
    const p = LeanStream.open(ch, '/x', { onFragment: () => undefined, onClose: () => undefined });
    ch.push(Buffer.from(answer));
    await assert.rejects(p);
  }
});

test('random bytes, masked or oversized frames and unknown opcodes end the stream with a reason, never a throw', async () => {
  for (let i = 0; i < 300; i++) {
    const { ch, closed } = await opened();
    const junk = randomBytes(1 + Math.floor(Math.random() * 200));
    assert.doesNotThrow(() => ch.push(junk));
    await new Promise((r) => setImmediate(r));
    assert.ok(closed.length <= 1);
  }
  for (const bad of [Buffer.from([0x81, 0x85, 1, 2, 3, 4, 5, 6, 7, 8, 9]), Buffer.from([0x83, 0]), Buffer.from([0x81, 127, 0xff, 0, 0, 0, 0, 0, 0, 0])]) {
    const { ch, closed } = await opened();
    ch.push(bad);
    await new Promise((r) => setImmediate(r));
    assert.equal(closed.length, 1, `closed on ${bad.toString('hex')}`);
  }
});
