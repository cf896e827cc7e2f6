// The question a relay started with --coordinator asks before it admits a node (relay/authorizer.ts),
// inside a control channel opened with the relay's own static key — its only credential:
//   GET /api/v1/relay/nodes/{node key, unpadded base64url (43 chars)}
//   → 200 {id, name}  registered and its key not expired
//   → 404             unknown, deleted or expired: the relay refuses it
//   → 400 malformed key, 403 the channel's key is not a relay this coordinator publishes
//   GET /api/v1/relay/relays/{relay key, unpadded base64url}   (the relay mesh: is a peer a relay?)
//   → 200 {name} the key is a relay in this coordinator's relay map; 404 it is not
// The same key gets 403 on every admin route (admin.ts): a relay can learn whether a key is a
// member, and nothing else.
import { encodeKey } from '../proto/wireguard/keys.js';
import { BadRequestError, ForbiddenError, NotFoundError } from './errors.js';
import { requireCaller, type ApiRequest, type Route } from './http.js';
import type { NodeRegistry } from './registry.js';

export interface RelayAuthorizationDeps {
  /** True for the static key (base64) of a relay in the relay map. */
  isRelayKey: (key: string) => boolean;
  /** The relay map's name for a relay key (base64), if it is one. */
  relayNameOf?: (key: string) => string | undefined;
  registry: NodeRegistry;
}

/** 32 bytes as unpadded base64url: 42 free characters and a last one whose 2 spare bits are 0. */
const NODE_KEY_BASE64URL = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

export function relayAuthorizationRoutes(deps: RelayAuthorizationDeps): Route[] {
  const guard = (req: ApiRequest): void => {
    const caller = requireCaller(req);
    if (!deps.isRelayKey(caller.key)) throw new ForbiddenError('only a relay in this coordinator\'s relay map (--relay-key) may look up members');
    caller.authenticated();
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
  }, {
    method: 'GET',
    path: /^\/api\/v1\/relay\/relays\/([^/]*)$/,
    guard,
    handle: async (req) => {
      const text = req.params[0] ?? '';
      if (!NODE_KEY_BASE64URL.test(text)) throw new BadRequestError('relay key must be 32 bytes in unpadded base64url (43 characters)');
      const key = encodeKey(Buffer.from(text, 'base64url'));
      if (!deps.isRelayKey(key)) throw new NotFoundError('not a relay of this coordinator');
      return { body: { name: deps.relayNameOf?.(key) ?? null } };
    },
  }];
}
