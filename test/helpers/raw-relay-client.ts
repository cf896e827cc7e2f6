// A relay client written straight on ws + proto/relay, for the cases the real client never
// produces: no client-info, a wrong proof, an oversized frame, a reader that stops reading.
import WebSocket from 'ws';
import { makeRelayProof } from '../../proto/relay/auth.js';
import { RelayFrameReader } from '../../proto/relay/frame-reader.js';
import { decodeRelayFrame, encodeRelayFrame, RELAY_PROTOCOL_VERSION, type RelayFrame } from '../../proto/relay/frames.js';
import { dhGenerate } from '../../proto/wireguard/noise-crypto.js';

export class RawRelayClient {
  readonly frames: RelayFrame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly keys = dhGenerate();
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    const reader = new RelayFrameReader();
    ws.on('message', (data: Buffer) => {
      reader.push(data, (type, payload) => {
        this.frames.push(decodeRelayFrame(type, Uint8Array.from(payload)));
        for (const w of this.waiters.splice(0)) w();
      });
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
      for (const w of this.waiters.splice(0)) w();
    }));
    ws.on('error', () => undefined);
  }

  static async connect(url: string): Promise<RawRelayClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const c = new RawRelayClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return c;
  }

  /** Waits for the first frame (in arrival order, from `from` on) matching type. */
  async next<T extends RelayFrame['type']>(type: T, timeoutMs = 5000, from = 0): Promise<Extract<RelayFrame, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.slice(from).find((x) => x.type === type);
      if (f) return f as Extract<RelayFrame, { type: T }>;
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`closed before a ${type} frame arrived`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${type} frame within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
  }

  /** Answers the challenge with a correct proof and waits for server-info. */
  async authenticate(): Promise<void> {
    const sk = await this.next('server-key');
    const proof = makeRelayProof(this.keys.privateKey, this.keys.publicKey, sk.serverKey, sk.challenge);
    this.sendFrame({ type: 'client-info', version: RELAY_PROTOCOL_VERSION, nodeKey: this.keys.publicKey, proof });
    await this.next('server-info');
  }

  sendFrame(f: RelayFrame): void {
    this.ws.send(encodeRelayFrame(f));
  }

  sendBytes(b: Uint8Array): void {
    this.ws.send(b);
  }

  close(): void {
    this.ws.terminate();
  }
}
