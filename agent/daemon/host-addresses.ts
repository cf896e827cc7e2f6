// This host's interface addresses and the networks they sit in, as an exit node's "internet
// only" rule needs them (agent/nat/exit-policy.ts). Read with getifaddrs (os.networkInterfaces),
// every interface included: the overlay TUN, loopback and any dummy or container bridge.
import { networkInterfaces } from 'node:os';
import { maskCidr, parseCidr, type Cidr } from '../../proto/ip/address.js';

export interface HostAddresses {
  own: Cidr[];
  connected: Cidr[];
}

export function readHostAddresses(): HostAddresses {
  const own: Cidr[] = [];
  const connected: Cidr[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.cidr === null) continue;
      let c: Cidr;
      try {
        c = parseCidr(a.cidr.replace(/%[^/]*/, '')); // fe80::1%eth0/64: no zone in a CIDR
      } catch {
        continue;
      }
      own.push({ ...c, bits: c.family === 4 ? 32 : 128 });
      connected.push(maskCidr(c));
    }
  }
  return { own, connected };
}
