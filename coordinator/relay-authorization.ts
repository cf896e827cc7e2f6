// The question a relay started with --coordinator asks before it admits a node (relay/authorizer.ts):
//   GET /api/v1/relay/nodes/{node key, unpadded base64url (43 chars)}
//   Authorization: Bearer ADMIN_TOKEN  (the relay's --coordinator-token-file holds the same token)
//   → 200 {id, name}  registered and its key not expired
//   → 404             unknown, deleted or expired: the relay refuses it
//   → 400 malformed key, 401 missing/bad token, 403 the coordinator has no admin token
import { timingSafeEqual } from 'node:crypto';
import { encodeKey } from '../proto/wireguard/keys.js';
import { hashAdminToken } from './admin.js';
import { BadRequestError, ForbiddenError, NotFoundError, UnauthorizedError } from './errors.js';
import type { ApiRequest, Route } from './http.js';
import type { NodeRegistry } from './registry.js';

export interface RelayAuthorizationDeps {
  /** SHA-256 of the admin token; null: answer 403. */
  tokenHash: Buffer | null;
  registry: NodeRegistry;
}

/** 32 bytes as unpadded base64url: 42 free characters and a last one whose 2 spare bits are 0. */
const NODE_KEY_BASE64URL = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

export function relayAuthorizationRoutes(deps: RelayAuthorizationDeps): Route[] {
  const guard = (req: ApiRequest): void => {
    if (!deps.tokenHash) throw new ForbiddenError('relay authorization disabled: start the coordinator with --admin-token-file FILE');
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) throw new UnauthorizedError('missing token (Authorization: Bearer TOKEN)');
    if (!timingSafeEqual(hashAdminToken(m[1]!), deps.tokenHash)) throw new UnauthorizedError('bad token');
  };
  return [{
    method: 'GET',
    path: /^\/api\/v1\/relay\/nodes\/([^/]*)$/,
    guard,
    handle: async (req) => {
      const text = req.params[0] ?? '';
      if (!NODE_KEY_BASE64URL.test(text)) throw new BadRequestError('node key must be 32 bytes in unpadded base64url (43 characters)');
      const node = deps.registry.getByKey(encodeKey(Buffer.from(text, 'base64url')));
      if (!node) throw new NotFoundError('unknown node key');
      if (deps.registry.isExpired(node)) throw new NotFoundError('node key expired');
      return { body: { id: node.id, name: node.name } };
    },
  }];
}
