// Handshake messages on the device: sending initiations, answering them (or answering with a
// cookie reply when under load), completing sessions and rotating keypairs.
import { copyBytes } from '../../proto/bytes.js';
import { MAX_INITIATIONS_PER_SECOND } from '../../proto/wireguard/constants.js';
import {
  HandshakeError, consumeInitiation, consumeResponse, createInitiation, createResponse, responseReceiver,
} from '../../proto/wireguard/handshake.js';
import { Keypair } from '../../proto/wireguard/keypair.js';
import {
  INITIATION_MAC1_OFFSET, RESPONSE_MAC1_OFFSET, decodeCookieReply, decodeInitiation,
} from '../../proto/wireguard/messages.js';
import { compareTai64n, tai64n } from '../../proto/wireguard/tai64n.js';
import { DecodeError } from '../../proto/errors.js';
import type { DeviceContext } from './context.js';
import type { Peer } from './peer.js';

/** Copies of one initiation sent on new paths, at most (each path change sends one). */
export const MAX_INITIATION_COPIES = 4;

export function sendInitiation(ctx: DeviceContext, peer: Peer, now: number): void {
  if (peer.endpoint === undefined || ctx.bind === undefined) { ctx.drops.noEndpoint++; return; }
  if (peer.handshake !== undefined) ctx.indices.delete(peer.handshake.localIndex);
  const index = ctx.newIndex();
  const { message, state } = createInitiation(ctx.identity, peer.remote, index, tai64n(Date.now()));
  peer.cookieJar.stamp(message, INITIATION_MAC1_OFFSET, now);
  peer.handshake = state;
  peer.initiation = message;
  peer.initiationCopies = 0;
  ctx.indices.set(index, { peer, keypair: undefined });
  ctx.bind.send(message, peer.endpoint);
  ctx.handshakes.initiationsSent++;
  peer.lastInitiationSentAt = now;
  if (peer.handshakeAttemptStartedAt === 0) peer.handshakeAttemptStartedAt = now;
  peer.retransmitDueAt = now + ctx.timers.REKEY_TIMEOUT + Math.floor(Math.random() * ctx.timers.REKEY_TIMEOUT_JITTER_MAX);
  peer.lastAuthenticatedTraversalAt = now;
}

/**
 * Sends the outstanding initiation again, byte for byte, to the peer's endpoint (its path changed).
 * A copy, not a new initiation: the responder answers whichever copy reaches it first and refuses
 * the other as a replay, and that answer completes our handshake. A new initiation would replace
 * the state the first one's answer needs, and reaching the responder within its rate limit
 * (1000 / MAX_INITIATIONS_PER_SECOND ms) of the first (a slow relay, a fast direct path) it would
 * be refused: no session until the retransmit timer, REKEY_TIMEOUT later.
 */
export function sendInitiationCopy(ctx: DeviceContext, peer: Peer, now: number): boolean {
  const initiation = peer.initiation;
  if (peer.handshake === undefined || initiation === undefined || peer.endpoint === undefined || ctx.bind === undefined) return false;
  if (peer.initiationCopies >= MAX_INITIATION_COPIES) return false;
  peer.initiationCopies++;
  const copy = Uint8Array.from(initiation);
  peer.cookieJar.stamp(copy, INITIATION_MAC1_OFFSET, now); // mac2 with a cookie that came since
  ctx.bind.send(copy, peer.endpoint);
  ctx.handshakes.initiationsSent++;
  return true;
}

/**
 * Handles a handshake message (type 1-3) that arrived from `addrs[addrOff..+20]`.
 * Every failure is counted and dropped; nothing here throws.
 */
export function receiveHandshake(ctx: DeviceContext, type: number, msg: Uint8Array, addrs: Uint8Array, addrOff: number, now: number): void {
  try {
    if (type === 1) receiveInitiation(ctx, msg, addrs, addrOff, now);
    else if (type === 2) receiveResponse(ctx, msg, addrs, addrOff, now);
    else receiveCookieReply(ctx, msg, now);
  } catch (err) {
    if (err instanceof DecodeError) ctx.drops.malformed++;
    else if (err instanceof HandshakeError) ctx.drops.handshakeRejected++;
    else throw err;
  }
}

/** Checks mac1, and under load mac2; answers with a cookie reply when mac2 is missing. */
function admit(ctx: DeviceContext, msg: Uint8Array, mac1Offset: number, sender: number, addrs: Uint8Array, addrOff: number, now: number): boolean {
  if (!ctx.cookieChecker.checkMac1(msg, mac1Offset)) { ctx.drops.badMac1++; return false; }
  if (!ctx.underLoad(now)) return true;
  const source = copyBytes(addrs, addrOff, addrOff + 20);
  if (ctx.cookieChecker.checkMac2(msg, mac1Offset, source, now)) return true;
  const reply = ctx.cookieChecker.createReply(msg, mac1Offset, sender, source, now);
  ctx.bind?.send(reply, addrs.subarray(addrOff, addrOff + 20));
  ctx.handshakes.cookieRepliesSent++;
  return false;
}

function receiveInitiation(ctx: DeviceContext, msg: Uint8Array, addrs: Uint8Array, addrOff: number, now: number): void {
  const sender = decodeInitiation(msg).sender;
  if (!admit(ctx, msg, INITIATION_MAC1_OFFSET, sender, addrs, addrOff, now)) return;
  ctx.handshakes.initiationsReceived++;
  const consumed = consumeInitiation(ctx.identity, msg,
    (pub) => ctx.peers.get(Buffer.from(pub).toString('base64'))?.remote.staticStatic);
  const peer = ctx.peers.get(Buffer.from(consumed.remoteStatic).toString('base64'))!;
  if (peer.lastInitiationTimestamp !== undefined && compareTai64n(consumed.timestamp, peer.lastInitiationTimestamp) <= 0) {
    throw new HandshakeError('replayed initiation timestamp');
  }
  if (now - peer.lastInitiationReceivedAt < 1000 / MAX_INITIATIONS_PER_SECOND) {
    throw new HandshakeError('initiations too frequent');
  }
  peer.lastInitiationTimestamp = consumed.timestamp;
  peer.lastInitiationReceivedAt = now;

  const index = ctx.newIndex();
  const { message, keys } = createResponse(consumed, peer.remote, index);
  const keypair = new Keypair(keys, index, consumed.remoteIndex, false, now);
  if (peer.next !== undefined) { ctx.indices.delete(peer.next.localIndex); peer.next.wipe(); }
  peer.next = keypair;
  ctx.indices.set(index, { peer, keypair });
  peer.noteHandshakeSource(addrs, addrOff);
  peer.cookieJar.stamp(message, RESPONSE_MAC1_OFFSET, now);
  // Answer where the initiation came from (with roaming that is also the endpoint now).
  ctx.bind?.send(message, addrs.subarray(addrOff, addrOff + 20));
  ctx.handshakes.responsesSent++;
  ctx.handshakes.completed++;
  peer.lastHandshakeCompletedAt = now;
  peer.newHandshakeDueAt = 0;
  peer.lastAuthenticatedTraversalAt = now;
}

function receiveResponse(ctx: DeviceContext, msg: Uint8Array, addrs: Uint8Array, addrOff: number, now: number): void {
  const receiver = responseReceiver(msg);
  const entry = ctx.indices.get(receiver);
  const peer = entry?.peer;
  if (peer === undefined || entry!.keypair !== undefined || peer.handshake?.localIndex !== receiver) {
    throw new HandshakeError('response to no initiation of ours');
  }
  const sender = msg[4]! | (msg[5]! << 8) | (msg[6]! << 16) | (msg[7]! << 24);
  if (!admit(ctx, msg, RESPONSE_MAC1_OFFSET, sender >>> 0, addrs, addrOff, now)) return;
  ctx.handshakes.responsesReceived++;
  const { remoteIndex, keys } = consumeResponse(ctx.identity, peer.remote, peer.handshake, msg);
  const keypair = new Keypair(keys, receiver, remoteIndex, true, now);
  // Rotation keeps the old session for packets still in flight: current → previous.
  const dropped = peer.previous;
  if (dropped !== undefined) { ctx.indices.delete(dropped.localIndex); dropped.wipe(); }
  if (peer.next !== undefined) {
    peer.previous = peer.next;
    peer.next = undefined;
    if (peer.current !== undefined) { ctx.indices.delete(peer.current.localIndex); peer.current.wipe(); }
  } else {
    peer.previous = peer.current;
  }
  peer.current = keypair;
  peer.handshake = undefined;
  peer.initiation = undefined;
  ctx.indices.set(receiver, { peer, keypair });
  peer.noteHandshakeSource(addrs, addrOff);
  peer.handshakeAttemptStartedAt = 0;
  peer.retransmitDueAt = 0;
  peer.lastHandshakeCompletedAt = now;
  peer.newHandshakeDueAt = 0;
  peer.lastAuthenticatedTraversalAt = now;
  ctx.handshakes.completed++;
  ctx.flushStaged(peer, now);
}

function receiveCookieReply(ctx: DeviceContext, msg: Uint8Array, now: number): void {
  const entry = ctx.indices.get(decodeCookieReply(msg).receiver);
  if (entry === undefined) throw new HandshakeError('cookie reply for an unknown index');
  if (!entry.peer.cookieJar.consumeReply(msg, now)) throw new HandshakeError('cookie reply does not open');
  ctx.handshakes.cookieRepliesReceived++;
}
