// Reads a wg-quick style file ([Interface] + [Peer] sections) for `pinhole agent --config`.
// Keys are case-insensitive, '#' and ';' start comments, whitespace around '=' is ignored.
// wg-quick settings that pinhole does not apply (DNS, Table, Pre/PostUp/Down, SaveConfig, FwMark)
// become warnings; anything else unknown or malformed is a ConfigError naming FILE:LINE.
import { readFile } from 'node:fs/promises';
import { DecodeError } from '../../proto/errors.js';
import { formatCidr, maskCidr, parseCidr, parseEndpoint, type Cidr, type HostPort } from '../../proto/ip/address.js';
import { decodeKey, encodeKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';

export interface WgQuickInterface {
  privateKey: Uint8Array;
  /** As written, host bits kept (100.64.0.1/10 is address 100.64.0.1 on a /10). */
  addresses: Cidr[];
  /** 0 means "pick a random port", as in wg. */
  listenPort?: number;
  mtu?: number;
}

export interface WgQuickPeer {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  /** Host bits masked (10.1.2.3/8 → 10.0.0.0/8), duplicates dropped, like wg. */
  allowedIps: Cidr[];
  endpoint?: HostPort;
  /** Seconds; absent when 0 or "off". */
  persistentKeepalive?: number;
  /** Line of the [Peer] header, for messages about this peer. */
  line: number;
}

export interface WgQuickConfig {
  interface: WgQuickInterface;
  peers: WgQuickPeer[];
  /** One line each, "FILE:LINE: ignoring DNS (...)". */
  warnings: string[];
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    detail: string,
  ) {
    super(`${file}${line === undefined ? '' : `:${line}`}: ${detail}`);
  }
}

const MAX_CONFIG_BYTES = 1 << 20;

/** Canonical spelling of every key we know, by lowercase name. */
const INTERFACE_KEYS = new Map(['PrivateKey', 'Address', 'ListenPort', 'MTU'].map((k) => [k.toLowerCase(), k]));
const PEER_KEYS = new Map(
  ['PublicKey', 'PresharedKey', 'AllowedIPs', 'Endpoint', 'PersistentKeepalive'].map((k) => [k.toLowerCase(), k]),
);
/** wg-quick/wg settings that are valid in a config but have no meaning for pinhole. */
const IGNORED_INTERFACE_KEYS = new Map(
  ['DNS', 'Table', 'PreUp', 'PostUp', 'PreDown', 'PostDown', 'SaveConfig', 'FwMark'].map((k) => [k.toLowerCase(), k]),
);
/** Keys that may appear more than once in a section (their lists add up). */
const LIST_KEYS = new Set(['Address', 'AllowedIPs']);

const show = (s: string): string => JSON.stringify(s.length > 64 ? `${s.slice(0, 61)}...` : s);

interface PeerDraft {
  line: number;
  publicKey?: Uint8Array;
  publicKeyLine?: number;
  presharedKey?: Uint8Array;
  allowedIps: Cidr[];
  endpoint?: HostPort;
  persistentKeepalive?: number;
}

/** Parses the text of a config file; `file` only appears in messages. */
export function parseWgQuickConfig(text: string, file = 'config'): WgQuickConfig {
  return new ConfigReader(file).read(text);
}

/** Reads and parses a config file; a missing or unreadable file is a ConfigError too. */
export async function loadWgQuickConfig(path: string): Promise<WgQuickConfig> {
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > MAX_CONFIG_BYTES) throw new ConfigError(path, undefined, `larger than ${MAX_CONFIG_BYTES} bytes`);
    text = bytes.toString('utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(path, undefined, `cannot read: ${(err as Error).message}`);
  }
  return parseWgQuickConfig(text, path);
}

class ConfigReader {
  private readonly warnings: string[] = [];
  private section: 'interface' | 'peer' | undefined;
  private interfaceLine: number | undefined;
  private privateKey: Uint8Array | undefined;
  private privateKeyLine = 0;
  private addresses: Cidr[] = [];
  private listenPort: number | undefined;
  private mtu: number | undefined;
  private mtuLine = 0;
  private readonly peers: PeerDraft[] = [];
  /** First line of each single-valued key in the current section, for "duplicate" errors. */
  private seen = new Map<string, number>();
  private lineNo = 0;

  constructor(private readonly file: string) {}

  read(text: string): WgQuickConfig {
    if (typeof text !== 'string') throw new ConfigError(this.file, undefined, 'config text is not a string');
    if (text.length > MAX_CONFIG_BYTES) throw new ConfigError(this.file, undefined, `larger than ${MAX_CONFIG_BYTES} bytes`);
    const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
    lines.forEach((line, i) => {
      this.lineNo = i + 1;
      this.readLine(line);
    });
    return this.finish();
  }

  /** Fails on the line being read. */
  private fail(detail: string): never {
    throw new ConfigError(this.file, this.lineNo, detail);
  }

  /** Fails on a given line, or on the file as a whole. */
  private failAt(line: number | undefined, detail: string): never {
    throw new ConfigError(this.file, line, detail);
  }

  private readLine(raw: string): void {
    const cut = raw.search(/[#;]/);
    const line = (cut < 0 ? raw : raw.slice(0, cut)).trim();
    if (line === '') return;
    if (line.startsWith('[')) return this.startSection(line);
    const eq = line.indexOf('=');
    if (eq < 0) this.fail(`expected "Key = Value" or a [Section] header, got ${show(line)}`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (key === '') this.fail(`missing key before "=" in ${show(line)}`);
    if (this.section === undefined) this.fail(`${show(key)} before any section (expected [Interface] or [Peer] first)`);
    const lower = key.toLowerCase();
    if (this.section === 'interface') {
      const ignored = IGNORED_INTERFACE_KEYS.get(lower);
      if (ignored !== undefined) {
        this.warnings.push(`${this.file}:${this.lineNo}: ignoring ${ignored} (a wg-quick setting pinhole does not apply)`);
        return;
      }
    }
    const name = (this.section === 'interface' ? INTERFACE_KEYS : PEER_KEYS).get(lower);
    if (name === undefined) this.fail(`unknown key ${show(key)} in [${this.section === 'interface' ? 'Interface' : 'Peer'}]`);
    if (!LIST_KEYS.has(name)) {
      const first = this.seen.get(name);
      if (first !== undefined) this.fail(`duplicate ${name} (first set at line ${first})`);
      this.seen.set(name, this.lineNo);
    }
    if (this.section === 'interface') this.setInterfaceKey(name, value);
    else this.setPeerKey(this.peers[this.peers.length - 1]!, name, value);
  }

  private startSection(line: string): void {
    const m = /^\[\s*([A-Za-z]+)\s*\]$/.exec(line);
    const name = m?.[1]?.toLowerCase();
    if (name === 'interface' || name === 'peer') this.endPeer();
    if (name === 'interface') {
      if (this.interfaceLine !== undefined) this.fail(`duplicate [Interface] section (first at line ${this.interfaceLine})`);
      this.interfaceLine = this.lineNo;
      this.section = 'interface';
    } else if (name === 'peer') {
      this.peers.push({ line: this.lineNo, allowedIps: [] });
      this.section = 'peer';
    } else {
      this.fail(`unknown section ${show(line)} (expected [Interface] or [Peer])`);
    }
    this.seen = new Map();
  }

  /** Checks the [Peer] section just finished (if any). */
  private endPeer(): void {
    const peer = this.section === 'peer' ? this.peers[this.peers.length - 1] : undefined;
    if (peer && !peer.publicKey) this.failAt(peer.line, '[Peer] has no PublicKey');
  }

  private setInterfaceKey(name: string, value: string): void {
    switch (name) {
      case 'PrivateKey':
        this.privateKey = this.key(name, value);
        this.privateKeyLine = this.lineNo;
        return;
      case 'Address':
        for (const item of this.list(name, value)) this.addresses.push(this.cidr(name, item));
        return;
      case 'ListenPort':
        this.listenPort = this.integer(name, value, 0, 65535);
        return;
      case 'MTU':
        this.mtu = this.integer(name, value, 68, 65535);
        this.mtuLine = this.lineNo;
        return;
    }
  }

  private setPeerKey(peer: PeerDraft, name: string, value: string): void {
    switch (name) {
      case 'PublicKey': {
        const key = this.key(name, value);
        const text = encodeKey(key);
        const other = this.peers.find((p) => p !== peer && p.publicKey && encodeKey(p.publicKey) === text);
        if (other) this.fail(`duplicate peer PublicKey (already used by the [Peer] at line ${other.line})`);
        peer.publicKey = key;
        peer.publicKeyLine = this.lineNo;
        return;
      }
      case 'PresharedKey':
        peer.presharedKey = this.key(name, value);
        return;
      case 'AllowedIPs':
        for (const item of this.list(name, value)) {
          const cidr = maskCidr(this.cidr(name, item));
          const text = formatCidr(cidr);
          if (peer.allowedIps.some((c) => formatCidr(c) === text)) continue;
          for (const other of this.peers) {
            if (other !== peer && other.allowedIps.some((c) => formatCidr(c) === text)) {
              this.warnings.push(
                `${this.file}:${this.lineNo}: ${text} is also in AllowedIPs of the [Peer] at line ${other.line}; the later peer gets it (as in wg)`,
              );
              other.allowedIps = other.allowedIps.filter((c) => formatCidr(c) !== text);
            }
          }
          peer.allowedIps.push(cidr);
        }
        return;
      case 'Endpoint':
        try {
          peer.endpoint = parseEndpoint(value);
        } catch (err) {
          if (!(err instanceof DecodeError)) throw err;
          this.fail(`bad value for Endpoint: ${show(value)} (expected host:port or [IPv6]:port; ${err.message})`);
        }
        return;
      case 'PersistentKeepalive': {
        const seconds = value.toLowerCase() === 'off' ? 0 : this.integer(name, value, 0, 65535, ' or "off"');
        if (seconds > 0) peer.persistentKeepalive = seconds;
        else delete peer.persistentKeepalive;
        return;
      }
    }
  }

  /** A key's value is never echoed: it may be a secret. */
  private key(name: string, value: string): Uint8Array {
    try {
      return decodeKey(value);
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      return this.fail(`bad value for ${name} (expected a 44-character base64 key as printed by "wg genkey")`);
    }
  }

  private integer(name: string, value: string, min: number, max: number, alt = ''): number {
    const n = /^[0-9]{1,10}$/.test(value) ? Number(value) : Number.NaN;
    if (!(n >= min && n <= max)) this.fail(`bad value for ${name}: ${show(value)} (expected ${min}-${max}${alt})`);
    return n;
  }

  /** Comma-separated items; an empty value is an empty list, an empty item is an error. */
  private list(name: string, value: string): string[] {
    if (value === '') return [];
    const items = value.split(',').map((s) => s.trim());
    if (items.some((s) => s === '')) this.fail(`bad value for ${name}: ${show(value)} (empty item in the list)`);
    return items;
  }

  private cidr(name: string, item: string): Cidr {
    try {
      return parseCidr(item);
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      return this.fail(`bad value for ${name}: ${show(item)} (expected an IP address with optional /prefix)`);
    }
  }

  private finish(): WgQuickConfig {
    this.endPeer();
    if (this.interfaceLine === undefined) this.failAt(undefined, 'no [Interface] section');
    if (!this.privateKey) this.failAt(this.interfaceLine, '[Interface] has no PrivateKey');
    if (this.mtu !== undefined && this.mtu < 1280 && this.addresses.some((a) => a.family === 6)) {
      this.failAt(this.mtuLine, `bad value for MTU: ${this.mtu} (IPv6 needs 1280-65535)`);
    }
    const ownKey = encodeKey(publicKeyFromPrivate(this.privateKey));
    const peers: WgQuickPeer[] = this.peers.map((p) => {
      const publicKey = p.publicKey!;
      if (encodeKey(publicKey) === ownKey) {
        this.failAt(p.publicKeyLine, `peer PublicKey is this interface's own public key (PrivateKey at line ${this.privateKeyLine})`);
      }
      const peer: WgQuickPeer = { publicKey, allowedIps: p.allowedIps, line: p.line };
      if (p.presharedKey) peer.presharedKey = p.presharedKey;
      if (p.endpoint) peer.endpoint = p.endpoint;
      if (p.persistentKeepalive !== undefined) peer.persistentKeepalive = p.persistentKeepalive;
      return peer;
    });
    const iface: WgQuickInterface = { privateKey: this.privateKey, addresses: this.addresses };
    if (this.listenPort !== undefined) iface.listenPort = this.listenPort;
    if (this.mtu !== undefined) iface.mtu = this.mtu;
    return { interface: iface, peers, warnings: this.warnings };
  }
}
