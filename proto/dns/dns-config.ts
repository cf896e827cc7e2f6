// The DNS settings a coordinator sends with the netmap: the domain nodes are named under
// (HOST.DOMAIN) and split-DNS routes (queries under SUFFIX go to RESOLVER instead of the host's
// resolvers). Parsing of the coordinator's flags lives here too, so the flag and the wire agree.
import * as z from 'zod/mini';
import '../zod-locale.js';

export const DEFAULT_DNS_DOMAIN = 'pinhole.internal';
/** The address every agent answers DNS on (never a node's address: the allocator skips it). */
export const MAGIC_DNS_IPV4 = '100.100.100.100';

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A lower-case DNS name without the trailing dot: labels of 1–63 letters, digits, "-", 253 in all, not all-numeric. */
export function isDnsName(text: string): boolean {
  if (text.length === 0 || text.length > 253 || /^[0-9.]+$/.test(text)) return false;
  return text.split('.').every((l) => LABEL.test(l));
}

export const DnsName = z.string().check(z.maxLength(253), z.refine(isDnsName, 'a DNS name like pinhole.internal (lower-case letters, digits, "-", dots)'));

/** "IP" or "IP:port" / "[IPv6]:port" of a resolver. */
export const ResolverAddress = z.string().check(z.maxLength(64), z.regex(/^(\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?|\[[0-9a-fA-F:.]+\]:\d{1,5}|[0-9a-fA-F:]+)$/, 'a resolver address like 192.0.2.53 or 192.0.2.53:5353'));

export const DnsRoute = z.object({ suffix: DnsName, resolver: ResolverAddress });
export type DnsRoute = z.infer<typeof DnsRoute>;

export const DnsConfig = z.object({
  domain: DnsName,
  routes: z._default(z.array(DnsRoute).check(z.maxLength(64)), []),
});
export type DnsConfig = z.infer<typeof DnsConfig>;

export class DnsConfigError extends Error {
  override readonly name = 'DnsConfigError';
}

/** `--dns-domain` and `--dns-route SUFFIX=RESOLVER ...` → the netmap's DNS settings; one-line error on a bad one. */
export function buildDnsConfig(domainText: string, routeTexts: readonly string[]): DnsConfig {
  const domain = domainText.trim().toLowerCase().replace(/\.$/, '');
  if (!isDnsName(domain)) throw new DnsConfigError(`--dns-domain: ${JSON.stringify(domainText)} is not a DNS name (e.g. pinhole.internal)`);
  const routes: DnsRoute[] = [];
  for (const text of routeTexts) {
    const eq = text.indexOf('=');
    const suffix = (eq < 0 ? '' : text.slice(0, eq)).trim().toLowerCase().replace(/\.$/, '');
    const resolver = eq < 0 ? '' : text.slice(eq + 1).trim();
    if (eq < 0 || !isDnsName(suffix)) throw new DnsConfigError(`--dns-route: expected SUFFIX=RESOLVER (e.g. corp.example=192.0.2.53), got ${JSON.stringify(text)}`);
    if (!ResolverAddress.safeParse(resolver).success || !validResolver(resolver)) {
      throw new DnsConfigError(`--dns-route: ${JSON.stringify(resolver)} is not a resolver address (IP or IP:port)`);
    }
    if (suffix === domain || suffix.endsWith(`.${domain}`)) throw new DnsConfigError(`--dns-route: ${suffix} is inside the node domain ${domain}`);
    routes.push({ suffix, resolver });
  }
  return { domain, routes };
}

/** Resolver text → host and port (53 unless given). */
export function splitResolver(text: string): { host: string; port: number } {
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(text);
  if (v6) return { host: v6[1]!, port: Number(v6[2]) };
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d+)$/.exec(text);
  if (v4) return { host: v4[1]!, port: Number(v4[2]) };
  return { host: text, port: 53 };
}

function validResolver(text: string): boolean {
  const { host, port } = splitResolver(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return false;
  if (host.includes(':')) return true;
  return host.split('.').every((o) => Number(o) <= 255);
}
