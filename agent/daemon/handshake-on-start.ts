// A freshly started device greets its peers with a handshake. Their sessions with us died with our
// previous device (restart, down/up), and WireGuard alone would have them keep sending into the
// old session until KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (15 s) pass. One initiation each fixes that;
// they go out in small batches so a large netmap does not become a burst.
import type { Device } from '../wireguard/device.js';

export const GREETING_BATCH = 64;
export const GREETING_INTERVAL_MS = 50;

/** Starts handshakes with the peers named (base64 keys) that have an endpoint; returns a cancel. */
export function handshakeOnStart(device: Device, peerKeys: string[]): () => void {
  let at = 0;
  let timer: NodeJS.Timeout | undefined;
  const step = (): void => {
    const now = device.now();
    for (const end = Math.min(at + GREETING_BATCH, peerKeys.length); at < end; at++) {
      const peer = device.peers.get(peerKeys[at]!);
      if (peer?.endpoint && peer.current === undefined) device.requestHandshake(peer, now);
    }
    if (at < peerKeys.length) timer = setTimeout(step, GREETING_INTERVAL_MS);
  };
  step();
  return () => clearTimeout(timer);
}
