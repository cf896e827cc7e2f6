// The paper's timers (section 6), evaluated on a periodic tick from per-peer timestamps instead of
// one OS timer per event: the hot path only stores numbers.
import type { DeviceContext } from './context.js';
import type { Peer } from './peer.js';
import { sendInitiation } from './handshakes.js';

/** How often the device evaluates timers, in ms. */
export const TIMER_TICK_MS = 100;

export function tickPeer(ctx: DeviceContext, peer: Peer, now: number): void {
  const t = ctx.timers;

  // Handshake retransmission: every REKEY_TIMEOUT (+ jitter) until REKEY_ATTEMPT_TIME runs out.
  if (peer.retransmitDueAt !== 0 && now >= peer.retransmitDueAt) {
    if (now - peer.handshakeAttemptStartedAt >= t.REKEY_ATTEMPT_TIME) {
      peer.retransmitDueAt = 0;
      peer.handshakeAttemptStartedAt = 0;
      peer.staged = [];
      if (peer.handshake !== undefined) { ctx.indices.delete(peer.handshake.localIndex); peer.handshake = undefined; }
    } else {
      sendInitiation(ctx, peer, now);
    }
  }

  // We received data and sent nothing back for KEEPALIVE_TIMEOUT: send a keepalive.
  if (peer.keepaliveDueAt !== 0 && now >= peer.keepaliveDueAt) {
    peer.keepaliveDueAt = 0;
    ctx.sendKeepalive(peer, now);
  }

  // We sent data and heard nothing for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT: the session may be dead.
  if (peer.newHandshakeDueAt !== 0 && now >= peer.newHandshakeDueAt) {
    peer.newHandshakeDueAt = 0;
    ctx.requestHandshake(peer, now);
  }

  if (peer.persistentKeepaliveSeconds > 0 && now - peer.lastAuthenticatedTraversalAt >= peer.persistentKeepaliveSeconds * 1000) {
    if (peer.current !== undefined) ctx.sendKeepalive(peer, now);
    else ctx.requestHandshake(peer, now);
    peer.lastAuthenticatedTraversalAt = now;
  }

  // No new session for 3 × REJECT_AFTER_TIME: erase all key material.
  if (peer.lastHandshakeCompletedAt !== 0 && now - peer.lastHandshakeCompletedAt >= 3 * t.REJECT_AFTER_TIME) {
    for (const kp of peer.keypairs()) { ctx.indices.delete(kp.localIndex); kp.wipe(); }
    peer.previous = peer.current = peer.next = undefined;
    peer.lastHandshakeCompletedAt = 0;
  }
}
