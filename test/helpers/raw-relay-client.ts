// A relay client written straight on ws + proto/relay, for the cases the real client never
// produces: no client-info, a wrong proof, an oversized frame, a reader that stops reading.
import WebSocket from 'ws';
import { randomBytes } from 'node:crypto';
import { checkRelayProof, makeNodeProof, relayHandshakeKey, type RelayHandshake } from '../../proto/relay/auth.js';
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

  static async connect(url: string, opts: { localAddress?: string } = {}): Promise<RawRelayClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
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

  /**
   * Answers the challenge with a correct proof (made with `privateKey`, claiming `nodeKey`: both
   * this client's own by default), waits for server-info, and returns whether its relay proof
   * verified for the key the relay presented.
   */
  async authenticate(opts: { privateKey?: Uint8Array; nodeKey?: Uint8Array; wait?: boolean } = {}): Promise<boolean> {
    const sk = await this.next('server-key');
    const hs: RelayHandshake = {
      nodeKey: opts.nodeKey ?? this.keys.publicKey, relayKey: Uint8Array.from(sk.serverKey), challenge: Uint8Array.from(sk.challenge),
      clientNonce: new Uint8Array(randomBytes(32)),
    };
    const k = relayHandshakeKey(opts.privateKey ?? this.keys.privateKey, hs.relayKey, hs)!;
    this.sendFrame({ type: 'client-info', version: RELAY_PROTOCOL_VERSION, nodeKey: hs.nodeKey, clientNonce: hs.clientNonce, proof: makeNodeProof(k, hs) });
    if (opts.wait === false) return false;
    const info = await this.next('server-info');
    return checkRelayProof(k, hs, info.relayProof);
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
