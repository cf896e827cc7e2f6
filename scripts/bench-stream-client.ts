// The benchmark's netmap-stream client: RFC 6455 client side, just what a simulated node needs,
// over an open control channel. The coordinator's side is the real one (ws); this side hands each
// text fragment to its caller as it is read, with no message assembly, no UTF-8 check and no
// stream layers in between — 10,000 of these share two cores with the coordinator they measure,
// and the ws library's receive path cost them more than the coordinator spent sending.
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import type { Duplex } from 'node:stream';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const EMPTY = Buffer.alloc(0);
/** Bounds of what this client accepts before the upgrade answer / in one frame. */
const MAX_RESPONSE_HEAD = 8192;
const MAX_FRAME = 64 * 1024 * 1024;

export interface LeanStreamHandlers {
  /** One fragment of a text message: `first` starts a message, `fin` ends it. */
  onFragment(data: Buffer, first: boolean, fin: boolean): void;
  /** The stream ended (close frame, channel closed, or a protocol error), once. */
  onClose(reason: string): void;
}

export class LeanStream {
  private buf: Buffer = EMPTY;
  private readonly pending: Buffer[] = [];
  private pendingLen = 0;
  /** Bytes the frame at the head of the buffer needs before it can be parsed. */
  private need = 2;
  private closed = false;
  private readonly mask = Buffer.alloc(4);

  private constructor(private readonly channel: Duplex, private readonly h: LeanStreamHandlers, rest: Buffer) {
    channel.on('data', (c: Buffer) => this.onData(c));
    channel.on('close', () => this.end('channel closed'));
    channel.on('error', (err: Error) => this.end(err.message));
    if (rest.length > 0) this.onData(rest);
  }

  /** Sends the upgrade request for `path` and resolves once the server switched protocols. */
  static open(channel: Duplex, path: string, h: LeanStreamHandlers): Promise<LeanStream> {
    const key = randomBytes(16).toString('base64');
    const accept = createHash('sha1').update(key + GUID).digest('base64');
    return new Promise((resolve, reject) => {
      let head: Buffer = EMPTY;
      const onData = (c: Buffer): void => {
        head = head.length === 0 ? c : Buffer.concat([head, c]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > MAX_RESPONSE_HEAD) fail(new Error('upgrade answer too long'));
          return;
        }
        cleanup();
        const text = head.subarray(0, end).toString('latin1');
        if (!text.startsWith('HTTP/1.1 101')) return reject(new Error(`upgrade refused: ${text.split('\r\n')[0]}`));
        if (!text.toLowerCase().includes(`sec-websocket-accept: ${accept.toLowerCase()}`)) return reject(new Error('upgrade answer without the right Sec-WebSocket-Accept'));
        resolve(new LeanStream(channel, h, head.subarray(end + 4)));
      };
      const fail = (err: Error): void => { cleanup(); reject(err); };
      const onClose = (): void => fail(new Error('channel closed before the upgrade answer'));
      const cleanup = (): void => {
        channel.off('data', onData);
        channel.off('error', fail);
        channel.off('close', onClose);
      };
      channel.on('data', onData);
      channel.once('error', fail);
      channel.once('close', onClose);
      channel.write(`GET ${path} HTTP/1.1\r\nHost: coordinator\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
  }

  /** One text message, masked as a client must. */
  sendText(text: string): void {
    this.sendFrame(0x1, Buffer.from(text));
  }

  destroy(): void {
    this.closed = true;
    this.channel.destroy();
  }

  private sendFrame(opcode: number, payload: Buffer): void {
    if (this.closed) return;
    const len = payload.length;
    const hdr = len < 126 ? 2 : len < 65536 ? 4 : 10;
    const out = Buffer.allocUnsafe(hdr + 4 + len);
    out[0] = 0x80 | opcode;
    if (hdr === 2) out[1] = 0x80 | len;
    else if (hdr === 4) { out[1] = 0x80 | 126; out.writeUInt16BE(len, 2); }
    else { out[1] = 0x80 | 127; out.writeBigUInt64BE(BigInt(len), 2); }
    randomFillSync(this.mask);
    this.mask.copy(out, hdr);
    for (let i = 0; i < len; i++) out[hdr + 4 + i] = payload[i]! ^ this.mask[i & 3]!;
    this.channel.write(out);
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    if (this.buf.length + this.pendingLen + chunk.length < this.need) {
      this.pending.push(chunk);
      this.pendingLen += chunk.length;
      return;
    }
    let b: Buffer;
    if (this.buf.length === 0 && this.pendingLen === 0) b = chunk;
    else {
      b = Buffer.concat([this.buf, ...this.pending, chunk]);
      this.pending.length = 0;
      this.pendingLen = 0;
    }
    let at = 0;
    this.need = 2;
    while (b.length - at >= 2) {
      const b0 = b[at]!;
      const b1 = b[at + 1]!;
      if (b1 & 0x80) return this.fail('masked frame from the server');
      let len = b1 & 0x7f;
      let hdr = 2;
      if (len === 126) {
        hdr = 4;
        if (b.length - at < hdr) { this.need = hdr; break; }
        len = b.readUInt16BE(at + 2);
      } else if (len === 127) {
        hdr = 10;
        if (b.length - at < hdr) { this.need = hdr; break; }
        const big = b.readBigUInt64BE(at + 2);
        if (big > BigInt(MAX_FRAME)) return this.fail('frame too large');
        len = Number(big);
      }
      if (b.length - at < hdr + len) { this.need = hdr + len; break; }
      const payload = b.subarray(at + hdr, at + hdr + len);
      at += hdr + len;
      const fin = (b0 & 0x80) !== 0;
      switch (b0 & 0x0f) {
        case 0x0: this.h.onFragment(payload, false, fin); break;
        case 0x1: this.h.onFragment(payload, true, fin); break;
        case 0x8: return this.end(`close frame ${len >= 2 ? payload.readUInt16BE(0) : ''} ${payload.subarray(2).toString()}`.trim());
        case 0x9: this.sendFrame(0xa, payload); break;
        case 0xa: break;
        default: return this.fail(`unexpected opcode ${b0 & 0x0f}`);
      }
      if (this.closed) return;
    }
    this.buf = at < b.length ? b.subarray(at) : EMPTY;
  }

  private fail(reason: string): void {
    this.end(reason);
    this.channel.destroy();
  }

  private end(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.h.onClose(reason);
  }
}
