// The managed agent's state directory (mode 0700): its keys (0600), its registration with the
// coordinator, its preferences and the last netmap — everything it needs to bring the tunnel
// back up after a restart without asking the coordinator. All writes are atomic.
//
//   node.key           WireGuard private key, base64 (as `wg genkey` prints it)
//   disco.key          NaCl box secret key, base64 (path discovery, see the NAT traversal issue)
//   registration.json  coordinator URL and server key, hostname asked for, SelfNode as assigned
//   prefs.json         whether the user wants the node up, the UDP port last used, routing prefs
//   netmap.json        the last full netmap with every delta since folded in
import { chmod, mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod/mini';
import { Key32, Netmap, SelfNode } from '../../proto/control/schemas.js';
import { decodeKey, encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import { isAtomicLeftover, writeFileAtomic } from './atomic-file.js';
import { RoutingPrefs } from './routing-prefs.js';

export const Registration = z.object({
  /** One URL, or the replicas' URLs separated by commas (coordinator-url.ts). */
  coordinatorUrl: z.string().check(z.maxLength(20_000), z.refine((u) => u.split(',').every((p) => URL.canParse(p)), 'coordinator URLs')),
  serverKey: Key32,
  hostname: z.string(),
  node: SelfNode,
  registeredAt: z.string(),
});
export type Registration = z.infer<typeof Registration>;

export const Prefs = z.object({
  /** `up` sets it, `down` and `logout` clear it; a restarted daemon follows it. */
  wantUp: z.boolean(),
  /** The UDP port last bound, reused so peers holding an old netmap still reach us. */
  listenPort: z.nullable(z.number().check(z.int(), z.gte(0), z.lte(65535))),
  /** Subnet routes / exit node offered and used (absent: all off). */
  routing: z.optional(RoutingPrefs),
  /** `up --accept-dns`: MagicDNS points the OS resolver at itself (absent: yes). */
  acceptDns: z.optional(z.boolean()),
});
export type Prefs = z.infer<typeof Prefs>;

export interface NodeKeys {
  nodePrivate: Uint8Array;
  /** base64 node public key (the WireGuard public key). */
  nodeKey: string;
  discoSecret: Uint8Array;
  /** base64 disco public key (NaCl box). */
  discoKey: string;
}

const FILES = { node: 'node.key', disco: 'disco.key', registration: 'registration.json', prefs: 'prefs.json', netmap: 'netmap.json' } as const;

export class StateFileError extends Error {
  override readonly name = 'StateFileError';
}

export class StateDir {
  /** Problems found while loading (a corrupt file is set aside as if absent, and said here). */
  readonly warnings: string[] = [];

  private constructor(readonly dir: string, private currentKeys: NodeKeys) {}

  /** Opens (creating if needed) the directory and loads or creates the node and disco keys. */
  static async open(dir: string): Promise<StateDir> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    // Leftovers of a write interrupted by kill -9: the target file is intact, these are junk.
    for (const name of await readdir(dir)) if (isAtomicLeftover(name)) await unlink(join(dir, name)).catch(() => undefined);
    const nodePrivate = await loadOrCreateKey(join(dir, FILES.node), generatePrivateKey);
    const discoSecret = await loadOrCreateKey(join(dir, FILES.disco), generatePrivateKey);
    return new StateDir(dir, keysOf(nodePrivate, discoSecret));
  }

  get keys(): NodeKeys {
    return this.currentKeys;
  }

  path(file: keyof typeof FILES): string {
    return join(this.dir, FILES[file]);
  }

  async loadRegistration(): Promise<Registration | null> {
    return this.loadJson('registration', Registration);
  }

  async saveRegistration(r: Registration): Promise<void> {
    await writeFileAtomic(this.path('registration'), `${JSON.stringify(r, null, 2)}\n`);
  }

  async loadPrefs(): Promise<Prefs> {
    return (await this.loadJson('prefs', Prefs)) ?? { wantUp: false, listenPort: null };
  }

  async savePrefs(p: Prefs): Promise<void> {
    await writeFileAtomic(this.path('prefs'), `${JSON.stringify(p, null, 2)}\n`);
  }

  async loadNetmap(): Promise<Netmap | null> {
    return this.loadJson('netmap', Netmap);
  }

  async saveNetmap(n: Netmap): Promise<void> {
    await writeFileAtomic(this.path('netmap'), JSON.stringify(n));
  }

  /** Logout: the registration and netmap go, and the node gets fresh keys (a new identity). */
  async forgetNode(): Promise<void> {
    for (const f of ['registration', 'netmap'] as const) await unlink(this.path(f)).catch(ignoreMissing);
    const nodePrivate = generatePrivateKey();
    const discoSecret = generatePrivateKey();
    await writeFileAtomic(this.path('node'), `${encodeKey(nodePrivate)}\n`);
    await writeFileAtomic(this.path('disco'), `${encodeKey(discoSecret)}\n`);
    this.currentKeys = keysOf(nodePrivate, discoSecret);
  }

  private async loadJson<T>(file: keyof typeof FILES, schema: z.ZodMiniType<T>): Promise<T | null> {
    let text: string;
    try {
      text = await readFile(this.path(file), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      this.warnings.push(`${FILES[file]}: not JSON, ignored`);
      return null;
    }
    const r = schema.safeParse(parsed);
    if (!r.success) {
      this.warnings.push(`${FILES[file]}: ${r.error.issues[0]?.path.join('.') ?? ''} ${r.error.issues[0]?.message ?? 'invalid'}, ignored`);
      return null;
    }
    return r.data;
  }
}

function keysOf(nodePrivate: Uint8Array, discoSecret: Uint8Array): NodeKeys {
  return {
    nodePrivate,
    nodeKey: encodeKey(publicKeyFromPrivate(nodePrivate)),
    discoSecret,
    discoKey: encodeKey(publicKeyFromPrivate(discoSecret)),
  };
}

/** Reads a base64 key file (tightening its mode to 0600 if needed), or creates one. */
async function loadOrCreateKey(path: string, create: () => Uint8Array): Promise<Uint8Array> {
  let text: string | null = null;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text === null) {
    const key = create();
    await writeFileAtomic(path, `${encodeKey(key)}\n`);
    return key;
  }
  if (((await stat(path)).mode & 0o077) !== 0) await chmod(path, 0o600);
  try {
    return decodeKey(text.trim());
  } catch (err) {
    // Never invent a new identity over a damaged one: the user must look at it.
    throw new StateFileError(`${path}: ${(err as Error).message}; move it away to start as a new node`);
  }
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}
