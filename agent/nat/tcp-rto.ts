// Retransmission timeout per RFC 6298: smoothed RTT and variance from one timed segment at a
// time (Karn: never from a retransmitted one), exponential backoff, Linux's 200 ms floor.

export const RTO_INITIAL_MS = 1000;
export const RTO_MIN_MS = 200;
export const RTO_MAX_MS = 60_000;
/** Clock granularity G of RFC 6298 §2. */
const CLOCK_GRANULARITY_MS = 1;

export class RtoEstimator {
  srtt = 0;
  rttvar = 0;
  /** Current timeout before backoff. */
  rto = RTO_INITIAL_MS;
  /** Consecutive expirations without progress (each doubles the timeout). */
  backoff = 0;

  /** Adds one round-trip sample (ms). */
  sample(rtt: number): void {
    if (rtt < 0) return;
    if (this.srtt === 0) {
      this.srtt = rtt;
      this.rttvar = rtt / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - rtt);
      this.srtt = 0.875 * this.srtt + 0.125 * rtt;
    }
    this.rto = Math.min(RTO_MAX_MS, Math.max(RTO_MIN_MS, this.srtt + Math.max(CLOCK_GRANULARITY_MS, 4 * this.rttvar)));
  }

  /** The timeout to arm now, backoff included. */
  current(): number {
    return Math.min(RTO_MAX_MS, this.rto * 2 ** this.backoff);
  }
}
