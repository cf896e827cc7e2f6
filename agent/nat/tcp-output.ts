// Writes one TCP/IP segment toward the overlay in the writer's buffer: IP header, TCP header
// (with SYN options when asked), payload copied straight from the send queue, checksums.
import { finishChecksum, pseudoHeaderSum, sumWords } from '../../proto/ip/checksum.js';
import { IP_PROTO_TCP, writeIpHeader } from '../../proto/ip/ip-header.js';
import { TCP_HEADER_MIN, setTcpChecksum, tcpSynOptionsLength, writeTcpHeader } from '../../proto/ip/tcp.js';
import { NAT_TTL, type OverlayWriter } from './overlay-writer.js';
import type { TcpSendQueue } from './tcp-send-queue.js';

/** The addresses and ports of a segment: from the remote host (as the client sees it) to the client. */
export interface TcpEndpoints {
  readonly version: 4 | 6;
  readonly remote: Uint8Array;
  readonly remotePort: number;
  readonly client: Uint8Array;
  readonly clientPort: number;
}

/**
 * Emits a segment from `ends.remote` to `ends.client`. Payload: queue bytes [offset, offset+len)
 * (queue may be null when len is 0). mss > 0 adds the SYN options (MSS, and window scale when
 * windowShift >= 0).
 */
export function emitTcpSegment(
  writer: OverlayWriter, ends: TcpEndpoints, seq: number, ack: number, flags: number, window: number,
  queue: TcpSendQueue | null, offset: number, len: number, mss = 0, windowShift = -1,
): void {
  const b = writer.buf;
  const headerLength = TCP_HEADER_MIN + (mss > 0 ? tcpSynOptionsLength(windowShift) : 0);
  const tcpLength = headerLength + len;
  const ipLen = writeIpHeader(b, 0, ends.version, IP_PROTO_TCP, tcpLength, ends.remote, ends.client, NAT_TTL);
  writeTcpHeader(b, ipLen, ends.remotePort, ends.clientPort, seq, ack, flags, window, mss, windowShift);
  if (len > 0 && queue) queue.copyOut(offset, len, b, ipLen + headerLength);
  const sum = sumWords(b, ipLen, ipLen + tcpLength, pseudoHeaderSum(b, 0, ends.version, IP_PROTO_TCP, tcpLength));
  setTcpChecksum(b, ipLen, finishChecksum(sum));
  writer.send(ipLen + tcpLength);
}
