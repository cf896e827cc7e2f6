// Real miniupnpd (Debian miniupnpd-nftables 2.3) as a site router's UPnP IGD, NAT-PMP and PCP
// server. What it needs here, verified on this machine:
// - its nftables chains first: 2.3 uses family inet (the package's nft_init.sh layout), in a table
//   named by upnp_table_name / upnp_nat_table_name;
// - a public WAN address, which in the lab (documentation ranges) it only accepts when it learns it
//   by STUN. Its STUN check sends 20-28 byte requests and needs CHANGE-REQUEST answers from the
//   other address: coturn on two addresses answers them, pinhole's relay does not (it never answers
//   with more bytes than asked, and needs two addresses for CHANGE-REQUEST). The check also fails
//   if the router's own NAT rewrites its source port (symmetric masquerade) or its input filter
//   drops the answers from the other address, so the router's traffic with the STUN server skips
//   conntrack (notrack): no NAT, no "ct state new" drop.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Site } from './site.js';
import type { LabProcess } from './process.js';

export interface MiniupnpdOptions {
  /** STUN server (coturn on two addresses) miniupnpd learns its public address from. */
  stun: { ips: readonly string[]; port: number };
  /** Default true: NAT-PMP and PCP on UDP 5351 (miniupnpd has one switch for both). */
  natPmp?: boolean;
  /** Default true: UPnP IGD (SSDP + HTTP/SOAP). */
  upnp?: boolean;
  /** Describe itself as IGD v1 (WANIPConnection:1, no AddAnyPortMapping); default v2. */
  igdV1?: boolean;
}

export interface Miniupnpd {
  readonly proc: LabProcess;
  /** Its device description (http://GATEWAY:PORT/rootDesc.xml; the port is new after a restart), for `upnpc -u`. */
  readonly descriptionUrl: string;
  /**
   * A router reboot: stops miniupnpd, empties its chains (SIGTERM leaves its rules in place; a
   * reboot does not), runs `between` while it is down, and starts it again (a new epoch).
   */
  restart(opts?: { between?: () => Promise<void>; igdV1?: boolean }): Promise<void>;
  /** The DNAT rules miniupnpd holds now (its prerouting chain), one line each. */
  rules(): Promise<string[]>;
  /** Stops miniupnpd and removes its tables and files. */
  stop(): Promise<void>;
}

const TABLE = 'miniupnpd';

function ruleset(stunIps: readonly string[]): string {
  const ips = stunIps.join(', ');
  return `table inet ${TABLE} {
  chain forward {
    type filter hook forward priority filter; policy accept;
    jump miniupnpd
  }
  chain miniupnpd {
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    jump postrouting_miniupnpd
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
}
table ip ${TABLE}_stun {
  chain pre {
    type filter hook prerouting priority raw; policy accept;
    ip saddr { ${ips} } notrack
  }
  chain out {
    type filter hook output priority raw; policy accept;
    ip daddr { ${ips} } notrack
  }
}
`;
}

/** Starts miniupnpd on the site's router (WAN wan0, LAN lan0) and waits until it serves. */
export async function startMiniupnpd(site: Site, opts: MiniupnpdOptions): Promise<Miniupnpd> {
  const dir = await mkdtemp(join(tmpdir(), 'natlab-miniupnpd-'));
  const router = site.router;
  await writeFile(join(dir, 'tables.nft'), ruleset(opts.stun.ips));
  await router.run(['nft', '-f', join(dir, 'tables.nft')]);
  const conf = join(dir, 'miniupnpd.conf');
  const writeConf = (igdV1: boolean): Promise<void> => writeFile(conf, [
    'ext_ifname=wan0',
    'listening_ip=lan0',
    `enable_natpmp=${opts.natPmp === false ? 'no' : 'yes'}`,
    `enable_upnp=${opts.upnp === false ? 'no' : 'yes'}`,
    'secure_mode=yes',
    `uuid=3f1e1a2b-0000-4000-8000-${String(site.index).padStart(12, '0')}`,
    'ext_perform_stun=yes',
    `ext_stun_host=${opts.stun.ips[0]}`,
    `ext_stun_port=${opts.stun.port}`,
    `upnp_table_name=${TABLE}`,
    `upnp_nat_table_name=${TABLE}`,
    // Short leases are the lab's to test renewal; the default minimum is 120 s.
    'min_lifetime=2',
    'max_lifetime=86400',
    `force_igd_desc_v1=${igdV1 ? 'yes' : 'no'}`,
    `allow 1024-65535 ${site.lan} 1024-65535`,
    'deny 0-65535 0.0.0.0/0 0-65535',
    '',
  ].join('\n'));
  await writeConf(opts.igdV1 ?? false);
  const spawn = async (): Promise<LabProcess> => {
    const p = router.spawn(['miniupnpd', '-d', '-f', conf, '-P', join(dir, 'miniupnpd.pid')]);
    await p.waitForOutput(/Listening for NAT-PMP|HTTP listening on port/, 15_000).catch((err: Error) => {
      throw new Error(`miniupnpd did not start: ${err.message}\n${p.output.split('\n').filter((l) => !l.includes('table_cb')).slice(-8).join('\n')}`);
    });
    if (/Port forwarding is now disabled/.test(p.output)) throw new Error(`miniupnpd refuses port forwarding:\n${p.output.split('\n').slice(-12).join('\n')}`);
    return p;
  };
  let proc = await spawn();
  return {
    get proc() { return proc; },
    get descriptionUrl() {
      const port = /HTTP listening on port (\d+)/.exec(proc.output)?.[1];
      if (!port) throw new Error('miniupnpd serves no UPnP (enable_upnp=no?)');
      return `http://${site.gateway}:${port}/rootDesc.xml`;
    },
    async restart(o = {}) {
      await proc.kill('SIGTERM', 3000);
      if (o.igdV1 !== undefined) await writeConf(o.igdV1);
      for (const chain of ['miniupnpd', 'prerouting_miniupnpd', 'postrouting_miniupnpd']) await router.run(['nft', 'flush', 'chain', 'inet', TABLE, chain]);
      await o.between?.();
      proc = await spawn();
    },
    async rules() {
      const out = await router.run(['nft', 'list', 'chain', 'inet', TABLE, 'prerouting_miniupnpd']);
      return out.split('\n').filter((l) => l.includes('dnat'));
    },
    async stop() {
      await proc.kill('SIGTERM', 3000).catch(() => undefined);
      await router.exec(['nft', 'delete', 'table', 'inet', TABLE]);
      await router.exec(['nft', 'delete', 'table', 'ip', `${TABLE}_stun`]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
