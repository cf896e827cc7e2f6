// Cryptokey routing table (WireGuard paper §2): longest-prefix match from an IP address to the
// peer that owns it, one path-compressed binary trie per family, as in wireguard-go's allowedips.
// Lookups read the address straight out of the packet and allocate nothing.
import type { Cidr, IpFamily } from '../ip/address.js';

/** A trie node: a prefix (host bits zero) that either owns a value or joins two subtrees. */
class TrieNode<T> {
  /** Whole 32-bit words the prefix covers, and the mask of the partly covered word after them. */
  readonly fullWords: number;
  readonly tailMask: number;
  hasValue = false;
  value: T | undefined = undefined;
  child0: TrieNode<T> | null = null;
  child1: TrieNode<T> | null = null;
  parent: TrieNode<T> | null = null;

  /** `words` holds the prefix big-endian in Int32s, so `key & mask` compares without >>> 0. */
  constructor(
    readonly words: Int32Array,
    readonly bits: number,
  ) {
    this.fullWords = bits >>> 5;
    this.tailMask = bits & 31 ? -1 << (32 - (bits & 31)) : 0;
  }
}

/** Bit `pos` (0 = most significant) of a big-endian word array. */
const bitAt = (words: Int32Array, pos: number): number => (words[pos >>> 5]! >>> (31 - (pos & 31))) & 1;

function commonBits(a: Int32Array, b: Int32Array): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]! ^ b[i]!;
    if (x !== 0) return i * 32 + Math.clz32(x);
  }
  return a.length * 32;
}

function maskWords(words: Int32Array, bits: number): Int32Array {
  const out = new Int32Array(words.length);
  for (let i = 0; i < words.length; i++) {
    const left = bits - i * 32;
    out[i] = left >= 32 ? words[i]! : left <= 0 ? 0 : words[i]! & (-1 << (32 - left));
  }
  return out;
}

/** One family's trie; keys are Int32Arrays of 1 (IPv4) or 4 (IPv6) words. */
class PrefixTrie<T> {
  root: TrieNode<T> | null = null;
  size = 0;

  constructor(readonly maxBits: number) {}

  /** Longest-prefix match: the value of the deepest valued node whose prefix covers `key`. */
  lookup(key: Int32Array): T | undefined {
    let found: T | undefined;
    let node = this.root;
    while (node !== null) {
      const words = node.words;
      for (let i = 0; i < node.fullWords; i++) if (key[i] !== words[i]) return found;
      if (node.tailMask !== 0 && (key[node.fullWords]! & node.tailMask) !== words[node.fullWords]) return found;
      if (node.hasValue) found = node.value;
      if (node.bits === this.maxBits) return found;
      node = bitAt(key, node.bits) === 0 ? node.child0 : node.child1;
    }
    return found;
  }

  /** Sets or replaces the owner of prefix key/bits (key already masked). */
  insert(key: Int32Array, bits: number, value: T): void {
    let parent: TrieNode<T> | null = null;
    let node = this.root;
    while (node !== null && node.bits <= bits && commonBits(node.words, key) >= node.bits) {
      if (node.bits === bits) {
        if (!node.hasValue) this.size++;
        node.hasValue = true;
        node.value = value;
        return;
      }
      parent = node;
      node = bitAt(key, node.bits) === 0 ? node.child0 : node.child1;
    }
    const fresh = new TrieNode<T>(key, bits);
    fresh.hasValue = true;
    fresh.value = value;
    this.size++;
    if (node === null) {
      this.link(parent, parent === null ? 0 : bitAt(key, parent.bits), fresh);
      return;
    }
    // `node` sits where `fresh` belongs: either fresh is a prefix of it, or they fork at `common`.
    const slot = parent === null ? 0 : bitAt(key, parent.bits);
    const common = Math.min(commonBits(node.words, key), bits);
    if (common === bits) {
      this.link(fresh, bitAt(node.words, bits), node);
      this.link(parent, slot, fresh);
      return;
    }
    const fork = new TrieNode<T>(maskWords(key, common), common);
    this.link(fork, bitAt(node.words, common), node);
    this.link(fork, bitAt(key, common), fresh);
    this.link(parent, slot, fork);
  }

  /** The node holding exactly key/bits, valued or not. */
  find(key: Int32Array, bits: number): TrieNode<T> | null {
    let node = this.root;
    while (node !== null && node.bits <= bits && commonBits(node.words, key) >= node.bits) {
      if (node.bits === bits) return node;
      node = bitAt(key, node.bits) === 0 ? node.child0 : node.child1;
    }
    return null;
  }

  /** Drops a node's value and splices out nodes that no longer join two subtrees. */
  clearValue(target: TrieNode<T>): void {
    if (!target.hasValue) return;
    target.hasValue = false;
    target.value = undefined;
    this.size--;
    let node: TrieNode<T> | null = target;
    while (node !== null && !node.hasValue && (node.child0 === null || node.child1 === null)) {
      const child: TrieNode<T> | null = node.child0 ?? node.child1;
      const parent: TrieNode<T> | null = node.parent;
      this.link(parent, parent === null ? 0 : parent.child0 === node ? 0 : 1, child);
      node.parent = node.child0 = node.child1 = null;
      node = parent;
    }
  }

  /** Makes `child` the root (parent null) or parent's child in `slot`. */
  private link(parent: TrieNode<T> | null, slot: number, child: TrieNode<T> | null): void {
    if (parent === null) this.root = child;
    else if (slot === 0) parent.child0 = child;
    else parent.child1 = child;
    if (child !== null) child.parent = parent;
  }

  /** Valued nodes in prefix order. */
  *nodes(): Generator<TrieNode<T>> {
    const stack: TrieNode<T>[] = this.root ? [this.root] : [];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node.hasValue) yield node;
      if (node.child1) stack.push(node.child1);
      if (node.child0) stack.push(node.child0);
    }
  }
}

function cidrWords(cidr: Cidr): Int32Array {
  const len = cidr.family === 4 ? 4 : cidr.family === 6 ? 16 : -1;
  const max = len * 8;
  if (len < 0 || cidr.bytes.length !== len || !Number.isInteger(cidr.bits) || cidr.bits < 0 || cidr.bits > max) {
    throw new RangeError(`not a valid IPv${cidr.family} prefix: ${cidr.bytes.length} bytes, /${cidr.bits}`);
  }
  const words = new Int32Array(len / 4);
  const b = cidr.bytes;
  for (let i = 0; i < words.length; i++) {
    words[i] = (b[4 * i]! << 24) | (b[4 * i + 1]! << 16) | (b[4 * i + 2]! << 8) | b[4 * i + 3]!;
  }
  return maskWords(words, cidr.bits);
}

function wordsToCidr(family: IpFamily, words: Int32Array, bits: number): Cidr {
  const bytes = new Uint8Array(words.length * 4);
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    bytes[4 * i] = w >>> 24;
    bytes[4 * i + 1] = w >>> 16;
    bytes[4 * i + 2] = w >>> 8;
    bytes[4 * i + 3] = w;
  }
  return { family, bytes, bits };
}

export class AllowedIps<T> {
  private readonly v4 = new PrefixTrie<T>(32);
  private readonly v6 = new PrefixTrie<T>(128);
  // Scratch keys that lookups fill from the packet, so the hot path allocates nothing.
  private readonly key4 = new Int32Array(1);
  private readonly key6 = new Int32Array(4);

  /** Called after every change (a device mirrors the table into its native data path). */
  onChange: (() => void) | undefined;

  /** Number of prefixes with an owner. */
  get size(): number {
    return this.v4.size + this.v6.size;
  }

  /** Gives `value` the prefix (host bits are masked off, like wg); replaces any previous owner. */
  insert(cidr: Cidr, value: T): void {
    this.trie(cidr.family).insert(cidrWords(cidr), cidr.bits, value);
    this.onChange?.();
  }

  /** Removes exactly this prefix (host bits masked); false if it had no owner. */
  remove(cidr: Cidr): boolean {
    const trie = this.trie(cidr.family);
    const node = trie.find(cidrWords(cidr), cidr.bits);
    if (node === null || !node.hasValue) return false;
    trie.clearValue(node);
    this.onChange?.();
    return true;
  }

  /** Removes every prefix owned by `value` (a peer being removed). */
  removeValue(value: T): void {
    for (const trie of [this.v4, this.v6]) {
      for (const node of [...trie.nodes()]) if (node.value === value) trie.clearValue(node);
    }
    this.onChange?.();
  }

  clear(): void {
    for (const trie of [this.v4, this.v6]) {
      trie.root = null;
      trie.size = 0;
    }
    this.onChange?.();
  }

  /** Owner of the IPv4 address at buf[offset..offset+4], or undefined (also if out of bounds). */
  lookupV4(buf: Uint8Array, offset: number): T | undefined {
    if (!(offset >= 0 && offset + 4 <= buf.length)) return undefined;
    this.key4[0] = (buf[offset]! << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!;
    return this.v4.lookup(this.key4);
  }

  /** Owner of the IPv6 address at buf[offset..offset+16], or undefined (also if out of bounds). */
  lookupV6(buf: Uint8Array, offset: number): T | undefined {
    if (!(offset >= 0 && offset + 16 <= buf.length)) return undefined;
    const key = this.key6;
    for (let i = 0, o = offset; i < 4; i++, o += 4) {
      key[i] = (buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!;
    }
    return this.v6.lookup(key);
  }

  /** Every prefix with its owner, IPv4 first, each family in address order. */
  entries(): Array<{ cidr: Cidr; value: T }> {
    const out: Array<{ cidr: Cidr; value: T }> = [];
    for (const [family, trie] of [[4, this.v4], [6, this.v6]] as const) {
      for (const node of trie.nodes()) out.push({ cidr: wordsToCidr(family, node.words, node.bits), value: node.value as T });
    }
    return out;
  }

  private trie(family: IpFamily): PrefixTrie<T> {
    if (family === 4) return this.v4;
    if (family === 6) return this.v6;
    throw new RangeError(`unknown address family ${String(family)}`);
  }
}
