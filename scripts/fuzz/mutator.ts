// A seeded PRNG and a structure-aware byte mutator: every input of a run follows from the seed,
// so a crash is reproduced by (target, seed, index) or by its hex. Mutations are those of
// libFuzzer/AFL in small: bit flips, interesting values at random offsets (lengths, counters,
// type bytes), truncation, extension, splicing two corpus entries, duplicated and deleted runs,
// plus pure random bytes.

/** sfc32 seeded through splitmix32: fast, good enough for fuzzing, reproducible. */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next(); this.b = next(); this.c = next(); this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** 0 <= n < max. */
  int(max: number): number {
    return max <= 1 ? 0 : this.u32() % max;
  }

  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

const INTERESTING8 = [0, 1, 2, 3, 4, 0x7f, 0x80, 0xfe, 0xff, 0x10, 0x20, 0x40, 0x45, 0x60, 0x50, 0x21];
const INTERESTING16 = [0, 1, 0x7fff, 0x8000, 0xffff, 0x00ff, 0x0100, 20, 40, 1280, 1500, 65535 - 8];
const INTERESTING32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x2112a442, 0x10000, 65536 + 5];

export const MAX_INPUT = 4096;

/** One input: a mutated corpus entry (mostly) or random bytes. */
export function nextInput(rng: Prng, corpus: readonly Uint8Array[]): Uint8Array {
  if (corpus.length === 0 || rng.chance(0.08)) return rng.bytes(rng.int(rng.chance(0.5) ? 64 : 600));
  let b: Uint8Array = Uint8Array.from(corpus[rng.int(corpus.length)]!);
  const n = 1 + rng.int(rng.chance(0.7) ? 3 : 10);
  for (let i = 0; i < n; i++) b = mutate(rng, b, corpus);
  return b.length > MAX_INPUT ? b.subarray(0, MAX_INPUT) : b;
}

function mutate(rng: Prng, b: Uint8Array, corpus: readonly Uint8Array[]): Uint8Array {
  const at = (): number => rng.int(b.length);
  switch (rng.int(11)) {
    case 0: // flip a bit
      if (b.length) b[at()]! ^= 1 << rng.int(8);
      return b;
    case 1: // random byte
      if (b.length) b[at()] = rng.u32() & 0xff;
      return b;
    case 2: // interesting byte
      if (b.length) b[at()] = INTERESTING8[rng.int(INTERESTING8.length)]!;
      return b;
    case 3: { // interesting u16, either byte order
      if (b.length < 2) return b;
      const v = INTERESTING16[rng.int(INTERESTING16.length)]!;
      const o = rng.int(b.length - 1);
      if (rng.chance(0.5)) { b[o] = v >> 8; b[o + 1] = v & 0xff; } else { b[o] = v & 0xff; b[o + 1] = v >> 8; }
      return b;
    }
    case 4: { // interesting u32
      if (b.length < 4) return b;
      const v = INTERESTING32[rng.int(INTERESTING32.length)]!;
      const o = rng.int(b.length - 3);
      new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(o, v, rng.chance(0.5));
      return b;
    }
    case 5: // truncate
      return b.subarray(0, rng.int(b.length + 1));
    case 6: { // extend with random or zero bytes
      const extra = rng.chance(0.5) ? rng.bytes(rng.int(64)) : new Uint8Array(rng.int(200));
      const out = new Uint8Array(b.length + extra.length);
      out.set(b);
      out.set(extra, b.length);
      return out;
    }
    case 7: { // splice with another corpus entry
      const other = corpus[rng.int(corpus.length)]!;
      const cut = rng.int(b.length + 1);
      const from = rng.int(other.length + 1);
      const out = new Uint8Array(cut + other.length - from);
      out.set(b.subarray(0, cut));
      out.set(other.subarray(from), cut);
      return out;
    }
    case 8: { // delete a run
      if (b.length < 2) return b;
      const s = at();
      const e = Math.min(b.length, s + 1 + rng.int(16));
      const out = new Uint8Array(b.length - (e - s));
      out.set(b.subarray(0, s));
      out.set(b.subarray(e), s);
      return out;
    }
    case 9: { // duplicate a run
      if (!b.length) return b;
      const s = at();
      const e = Math.min(b.length, s + 1 + rng.int(32));
      const out = new Uint8Array(b.length + (e - s));
      out.set(b.subarray(0, e));
      out.set(b.subarray(s), e);
      return out;
    }
    default: { // overwrite a run with one byte value
      if (!b.length) return b;
      const s = at();
      b.fill(INTERESTING8[rng.int(INTERESTING8.length)]!, s, Math.min(b.length, s + 1 + rng.int(16)));
      return b;
    }
  }
}
