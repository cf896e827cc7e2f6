// The port-mapping protocols by name, best first (kept apart so the CLI can check a flag without
// loading the clients).
export type PortmapProtocol = 'pcp' | 'nat-pmp' | 'upnp';
export const PORTMAP_PROTOCOLS: readonly PortmapProtocol[] = ['pcp', 'nat-pmp', 'upnp'];
