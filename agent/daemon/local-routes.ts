// The managed agent's local API (unix socket, used by the CLI). Request bodies are parsed with
// zod like everything else that comes from outside the process: a bad one is a 400 with a reason.
import type { IncomingMessage } from 'node:http';
import * as z from 'zod/mini';
import { describeZodError } from '../../proto/control/schemas.js';
import { changeCall, LocalApiError, readCall, type LocalApiRoute } from '../localapi/server.js';
import type { ManagedAgent } from './managed-agent.js';
import { AdvertiseFlags, ClientRoutingFlags } from './routing-prefs.js';

export const LOCAL_PATHS = {
  status: '/v0/status',
  register: '/v0/register',
  up: '/v0/up',
  down: '/v0/down',
  logout: '/v0/logout',
  netcheck: '/v0/netcheck',
} as const;

export const LocalRegisterBody = z.strictObject({
  coordinatorUrl: z.optional(z.string().check(z.maxLength(2000))),
  authKey: z.optional(z.string().check(z.maxLength(200))),
  coordinatorKey: z.optional(z.string().check(z.maxLength(100))),
  hostname: z.optional(z.string().check(z.maxLength(200))),
  /** Plain `up` of a registered node: if the coordinator is unreachable, come up on what is on file. */
  allowOffline: z.optional(z.boolean()),
  ...AdvertiseFlags.shape,
});
export type LocalRegisterBody = z.infer<typeof LocalRegisterBody>;

/** `up`: the routing flags, and --accept-dns. */
export const LocalUpBody = z.strictObject({ ...ClientRoutingFlags.shape, acceptDns: z.optional(z.boolean()) });
export type LocalUpBody = z.infer<typeof LocalUpBody>;

const MAX_BODY = 64 * 1024;

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new LocalApiError(413, 'request body too large');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new LocalApiError(400, 'request body is not JSON');
  }
}

export const LocalPingBody = z.strictObject({
  peer: z.string().check(z.minLength(1), z.maxLength(200)),
  timeoutMs: z._default(z.number().check(z.int(), z.gte(10), z.lte(8000)), 2000),
});

/** Every call that alters prefs or state (register carries routes and the exit-node offer; up the exit node) is a change. */
export function managedRoutes(agent: ManagedAgent): Record<string, LocalApiRoute> {
  return {
    'POST /v0/ping': readCall('ping', async (req) => {
      const r = LocalPingBody.safeParse(await readJson(req));
      if (!r.success) throw new LocalApiError(400, describeZodError(r.error));
      return agent.ping(r.data.peer, r.data.timeoutMs);
    }),
    [`GET ${LOCAL_PATHS.status}`]: readCall('status', () => agent.status()),
    [`POST ${LOCAL_PATHS.register}`]: changeCall('up', async (req) => {
      const r = LocalRegisterBody.safeParse(await readJson(req));
      if (!r.success) throw new LocalApiError(400, describeZodError(r.error));
      return agent.register(r.data);
    }),
    [`POST ${LOCAL_PATHS.up}`]: changeCall('up', async (req) => {
      const r = LocalUpBody.safeParse(await readJson(req));
      if (!r.success) throw new LocalApiError(400, describeZodError(r.error));
      return agent.up(r.data);
    }),
    [`POST ${LOCAL_PATHS.down}`]: changeCall('down', () => agent.down()),
    [`POST ${LOCAL_PATHS.logout}`]: changeCall('logout', () => agent.logout()),
    [`GET ${LOCAL_PATHS.netcheck}`]: readCall('netcheck', () => agent.netcheck()),
  };
}
