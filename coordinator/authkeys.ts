// Auth keys: what an admin hands out so a new node may join. The text form is
// phk_<prefix>_<secret>_<fingerprint>: the prefix (12 hex) finds the row, the secret (64 hex,
// 256 random bits) is checked against its SHA-256, the fingerprint names this coordinator's key
// so the agent can authenticate it before sending the secret (proto/control/coordinator-key.ts).
// Only the hash is stored; the secret is shown once, at creation.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { formatAuthKey, parseAuthKey, type AuthKeyParts } from '../proto/control/coordinator-key.js';
import type { AuthKeyCreate, AuthKeyInfo } from '../proto/control/schemas.js';
import { NotFoundError, RequestRefusedError } from './errors.js';
import { IdentityTakenError, type AuthKeyRow, type ControlStore } from './store/interface.js';


/** Why a presented key was turned down: 401 for keys we cannot match, 403 for keys no longer usable. */
export class AuthKeyRefusedError extends RequestRefusedError {
  override readonly name = 'AuthKeyRefusedError';
}

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function authKeyInfo(k: AuthKeyRow): AuthKeyInfo {
  return {
    id: k.id,
    prefix: `phk_${k.prefix}`,
    reusable: k.reusable,
    ephemeral: k.ephemeral,
    tags: [...k.tags],
    user: k.user,
    createdAt: new Date(k.createdAt).toISOString(),
    expiresAt: k.expiresAt === null ? null : new Date(k.expiresAt).toISOString(),
    usedCount: k.usedCount,
    revoked: k.revokedAt !== null,
  };
}

/** A use of a key that is reserved but not yet committed (a registration in flight). */
export interface AuthKeyUse {
  key: AuthKeyRow;
  /** Call after the registration committed: counts the use in memory. */
  commit(): void;
  /** Call if it did not: frees a single-use key for another attempt. */
  release(): void;
}

export class AuthKeys {
  private readonly byId = new Map<number, AuthKeyRow>();
  private readonly byPrefix = new Map<string, AuthKeyRow>();
  /** Single-use keys with a registration in flight: a second concurrent use is refused. */
  private readonly inFlight = new Set<number>();
  private lastId: number;

  constructor(
    private readonly store: ControlStore, rows: AuthKeyRow[], lastId: number,
    /** The fingerprint new keys carry (the coordinator key's, the next one's during a rotation). */
    private readonly fingerprint: () => string,
    private readonly now: () => number = Date.now,
  ) {
    for (const r of rows) {
      this.byId.set(r.id, r);
      this.byPrefix.set(r.prefix, r);
    }
    this.lastId = Math.max(lastId, ...rows.map((r) => r.id), 0);
  }

  async create(req: AuthKeyCreate): Promise<AuthKeyInfo & { key: string }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.createOnce(req);
      } catch (err) {
        // Another coordinator on the same database took the id (or, once in 2^48, the prefix).
        if (!(err instanceof IdentityTakenError) || attempt >= 5) throw err;
        this.lastId = Math.max(this.lastId, (await this.store.takenIdentities()).lastAuthKeyId);
      }
    }
  }

  private async createOnce(req: AuthKeyCreate): Promise<AuthKeyInfo & { key: string }> {
    let prefix: string;
    do prefix = randomBytes(6).toString('hex'); while (this.byPrefix.has(prefix));
    const secret = randomBytes(32).toString('hex');
    const createdAt = this.now();
    const row: AuthKeyRow = {
      id: ++this.lastId,
      prefix,
      secretHash: hashSecret(secret).toString('hex'),
      reusable: req.reusable,
      ephemeral: req.ephemeral,
      tags: [...new Set(req.tags.map((t) => t.toLowerCase()))],
      user: req.user?.toLowerCase() ?? null,
      createdAt,
      expiresAt: req.expirySeconds === undefined ? null : createdAt + req.expirySeconds * 1000,
      usedCount: 0,
      revokedAt: null,
    };
    this.byPrefix.set(prefix, row); // reserve the prefix while the insert is in flight
    try {
      await this.store.insertAuthKey(row);
    } catch (err) {
      this.byPrefix.delete(prefix);
      throw err;
    }
    this.byId.set(row.id, row);
    return { ...authKeyInfo(row), key: formatAuthKey(prefix, secret, this.fingerprint()) };
  }

  /** Applies keys another replica committed (read back from the database), without writing them. */
  applyStored(rows: AuthKeyRow[]): void {
    for (const r of rows) {
      const known = this.byId.get(r.id);
      if (known) {
        Object.assign(known, r); // the same object: a use in flight keeps counting on it
        continue;
      }
      this.byId.set(r.id, r);
      this.byPrefix.set(r.prefix, r);
      this.lastId = Math.max(this.lastId, r.id);
    }
  }

  list(): AuthKeyInfo[] {
    return [...this.byId.values()].map(authKeyInfo);
  }

  async revoke(id: number): Promise<AuthKeyInfo> {
    const row = this.byId.get(id);
    if (!row) throw new NotFoundError(`no auth key with id ${id}`);
    if (row.revokedAt === null) {
      const at = this.now();
      await this.store.revokeAuthKey(id, at);
      row.revokedAt = at;
    }
    return authKeyInfo(row);
  }

  /**
   * Checks a presented key and reserves one use of it. Throws AuthKeyRefusedError with the reason;
   * nothing changes in memory or on disk until the caller commits the use.
   */
  beginUse(text: string): AuthKeyUse {
    let parts: AuthKeyParts;
    try {
      parts = parseAuthKey(text);
    } catch (err) {
      throw new AuthKeyRefusedError(401, (err as Error).message);
    }
    const row = this.byPrefix.get(parts.prefix);
    const presented = hashSecret(parts.secret);
    // Same work whether or not the prefix exists, so timing does not tell prefixes apart.
    const expected = row && this.byId.has(row.id) ? Buffer.from(row.secretHash, 'hex') : Buffer.alloc(32);
    if (!timingSafeEqual(presented, expected) || !row || !this.byId.has(row.id)) {
      throw new AuthKeyRefusedError(401, 'unknown auth key');
    }
    if (row.revokedAt !== null) throw new AuthKeyRefusedError(403, 'auth key revoked');
    if (row.expiresAt !== null && row.expiresAt <= this.now()) throw new AuthKeyRefusedError(403, 'auth key expired');
    if (!row.reusable && (row.usedCount > 0 || this.inFlight.has(row.id))) {
      throw new AuthKeyRefusedError(403, 'single-use auth key already used');
    }
    if (!row.reusable) this.inFlight.add(row.id);
    let settled = false;
    return {
      key: row,
      commit: () => {
        if (settled) return;
        settled = true;
        row.usedCount++;
        this.inFlight.delete(row.id);
      },
      release: () => {
        if (settled) return;
        settled = true;
        this.inFlight.delete(row.id);
      },
    };
  }
}
