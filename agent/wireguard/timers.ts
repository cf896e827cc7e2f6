// The paper's timers (section 6), evaluated from per-peer timestamps instead of one OS timer per
// event: the hot path (JS or native) only stores numbers. The device wakes at the earliest
// deadline it knows (nextTimerDeadline), but at least once every min(KEEPALIVE_TIMEOUT,
// REKEY_TIMEOUT): every deadline the hot path sets lies at least that far ahead, so a wake in
// between always sees it in time (timerWakeDelay). An idle device wakes every 5 s, not 10 times a second.
import type { WireGuardTimers } from '../../proto/wireguard/constants.js';
import type { DeviceContext } from './context.js';
import type { Peer } from './peer.js';
import { sendInitiation } from './handshakes.js';

/** The shortest wait between two timer evaluations, in ms (a deadline that stays due is retried this often). */
export const TIMER_TICK_MS = 100;

/** The earliest moment tickPeer would do something for this peer; Infinity if nothing is pending. */
export function nextTimerDeadline(t: WireGuardTimers, peer: Peer): number {
  let next = Infinity;
  if (peer.retransmitDueAt !== 0) next = Math.min(next, peer.retransmitDueAt);
  if (peer.keepaliveDueAt !== 0) next = Math.min(next, peer.keepaliveDueAt);
  if (peer.newHandshakeDueAt !== 0) next = Math.min(next, peer.newHandshakeDueAt);
  if (peer.persistentKeepaliveSeconds > 0) next = Math.min(next, peer.lastAuthenticatedTraversalAt + peer.persistentKeepaliveSeconds * 1000);
  if (peer.lastHandshakeCompletedAt !== 0) next = Math.min(next, peer.lastHandshakeCompletedAt + 3 * t.REJECT_AFTER_TIME);
  return next;
}

/**
 * How long to sleep before the next evaluation: until `next` (the earliest deadline known), no
 * less than TIMER_TICK_MS, and no more than the shortest delay the hot path sets a deadline at.
 */
export function timerWakeDelay(t: WireGuardTimers, next: number, now: number): number {
  const guard = Math.max(TIMER_TICK_MS, Math.min(t.KEEPALIVE_TIMEOUT, t.REKEY_TIMEOUT));
  return Math.max(TIMER_TICK_MS, Math.min(guard, Math.ceil(next - now)));
}

export function tickPeer(ctx: DeviceContext, peer: Peer, now: number): void {
  const t = ctx.timers;

  // Handshake retransmission: every REKEY_TIMEOUT (+ jitter) until REKEY_ATTEMPT_TIME runs out.
  if (peer.retransmitDueAt !== 0 && now >= peer.retransmitDueAt) {
    if (now - peer.handshakeAttemptStartedAt >= t.REKEY_ATTEMPT_TIME) {
      peer.retransmitDueAt = 0;
      peer.handshakeAttemptStartedAt = 0;
      peer.staged = [];
      if (peer.handshake !== undefined) { ctx.indices.delete(peer.handshake.localIndex); peer.handshake = undefined; }
      peer.initiation = undefined;
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
