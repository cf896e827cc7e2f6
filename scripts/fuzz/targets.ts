// Every fuzz target, in the order a run visits them. Each is built fresh per run (its own keys,
// sockets and state), so a run is reproducible from its seed.
import type { FuzzTargetFactory } from './target.js';
import { disco, relayFrames, relayMeshFrames, relayTrains, stun, wireguardDevice, wireguardMessages, wireguardResponder } from './targets-wire.js';
import { ipParsers, packetFilter, userspaceNat } from './targets-packets.js';
import { controlJson, controlPreface } from './targets-control.js';
import { portmap } from './targets-portmap.js';

export const FUZZ_TARGETS: ReadonlyArray<{ name: string; make: FuzzTargetFactory }> = [
  { name: 'wireguard-messages', make: wireguardMessages },
  { name: 'wireguard-responder', make: wireguardResponder },
  { name: 'wireguard-device', make: wireguardDevice },
  { name: 'relay-trains', make: relayTrains },
  { name: 'disco', make: disco },
  { name: 'stun', make: stun },
  { name: 'relay-frames', make: relayFrames },
  { name: 'relay-mesh-frames', make: relayMeshFrames },
  { name: 'control-json', make: controlJson },
  { name: 'control-preface', make: controlPreface },
  { name: 'ip-parsers', make: ipParsers },
  { name: 'packet-filter', make: packetFilter },
  { name: 'userspace-nat', make: userspaceNat },
  { name: 'portmap', make: portmap },
];
