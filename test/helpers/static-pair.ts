// Two static pinhole agents, A and B, on two lab hosts: A knows B's endpoint, B learns A's from
// the first handshake. Shared by the protocol and native data path lab tests.
import type { Host } from '../../scripts/natlab/index.js';
import { startStaticAgent, type StaticAgent } from '../../scripts/tunnels/pinhole-static.js';
import { newKeyPair, type KeyPairText } from '../../scripts/tunnels/keys.js';

export interface StaticPairOptions {
  /** TUN names, unique per run (≤ 15 chars). */
  tunA: string;
  tunB: string;
  ipA: string;
  ipB: string;
  port: number;
  envA?: Record<string, string>;
  envB?: Record<string, string>;
}

export interface StaticPair {
  a: StaticAgent;
  b: StaticAgent;
  kb: KeyPairText;
  stop(): Promise<void>;
}

export async function startStaticPair(hostA: Host, hostB: Host, o: StaticPairOptions): Promise<StaticPair> {
  const ka = newKeyPair();
  const kb = newKeyPair();
  const b = await startStaticAgent(hostB, {
    tun: o.tunB, privateKey: kb.privateKey, addresses: [`${o.ipB}/32`], listenPort: o.port, env: o.envB,
    peers: [{ publicKey: ka.publicKey, allowedIps: [`${o.ipA}/32`] }],
  });
  let a: StaticAgent;
  try {
    a = await startStaticAgent(hostA, {
      tun: o.tunA, privateKey: ka.privateKey, addresses: [`${o.ipA}/32`], listenPort: o.port, env: o.envA,
      peers: [{ publicKey: kb.publicKey, allowedIps: [`${o.ipB}/32`], endpoint: `${hostB.ip}:${o.port}` }],
    });
  } catch (err) { await b.stop(); throw err; }
  return { a, b, kb, stop: async () => { await a.stop(); await b.stop(); } };
}
