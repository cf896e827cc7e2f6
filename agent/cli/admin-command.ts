// `pinhole admin --coordinator URL [--coordinator-key FP] (--token-file F | --token T) ...`: the
// coordinator's admin API from a shell, inside a control channel to the pinned coordinator key
// (agent/control/control-channel.ts) under a throwaway static key; the token never leaves it.
//   authkey create [--reusable] [--ephemeral] [--expiry DURATION] [--tag TAG]... [--user NAME] | authkey list
//   | authkey revoke ID | nodes list | nodes delete N | nodes expire N | nodes rename N NEW-NAME
//   | routes list | routes approve NODE CIDR... | routes unapprove NODE CIDR... | policy get
//   | policy set FILE | paths
// Every subcommand takes --json. N and NODE are a node id or name. The token may also come from
// PINHOLE_ADMIN_TOKEN or --token-file, the key from PINHOLE_COORDINATOR_KEY, --coordinator-key-file
// or the URL's fragment (#FINGERPRINT). Failures throw one-line errors; the caller prints them.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { generatePrivateKey } from '../../proto/wireguard/keys.js';
import { CoordinatorKeyState, Hostname, Tag, TAG_RULE } from '../../proto/control/schemas.js';
import { controlCall, CoordinatorRefusedError } from '../control/control-channel.js';
import { keyToPin } from '../control/register.js';
import { Command, Option } from 'commander';
import type * as z from 'zod/mini';
import { parseDuration } from '../../proto/control/duration.js';
import { PolicyReply } from '../../proto/control/policy.js';
import { checkPolicyText } from './policy-file.js';
import { AdminPaths } from '../../proto/control/mesh-paths.js';
import { canonicalRoute } from '../../proto/control/routes.js';
import {
  AuthKeyCreated, AuthKeyInfo, AuthKeyList, NodeInfo, NodeList, RouteList,
  type AuthKeyInfo as AuthKey, type NodeInfo as Node,
} from '../../proto/control/schemas.js';

export class AdminRequestError extends Error {
  override readonly name = 'AdminRequestError';
}

interface AdminTarget { coordinator: string; coordinatorKey: string; token: string }

function readSecretFile(flag: string, file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new AdminRequestError(`${flag}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function target(cmd: Command): AdminTarget {
  const o = cmd.optsWithGlobals() as { coordinator?: string; token?: string; tokenFile?: string; coordinatorKey?: string; coordinatorKeyFile?: string };
  if (!o.coordinator) throw new AdminRequestError('admin: --coordinator URL is required');
  if (!URL.canParse(o.coordinator)) throw new AdminRequestError(`admin: --coordinator: not a URL: ${o.coordinator}`);
  const u = new URL(o.coordinator);
  const fromUrl = u.hash.replace(/^#/, '');
  u.hash = '';
  const key = o.coordinatorKey ?? (o.coordinatorKeyFile ? readSecretFile('--coordinator-key-file', o.coordinatorKeyFile) : undefined) ?? (fromUrl || undefined);
  if (!key) {
    throw new AdminRequestError('admin: no coordinator key to pin: pass --coordinator-key FINGERPRINT (the coordinator prints "pinhole coordinator key FINGERPRINT" at start)');
  }
  const token = o.tokenFile ? readSecretFile('--token-file', o.tokenFile) : o.token;
  if (!token) throw new AdminRequestError('admin: no token: pass --token-file F, set PINHOLE_ADMIN_TOKEN, or --token T');
  return { coordinator: u.toString().replace(/\/+$/, ''), coordinatorKey: key, token };
}

/** One admin API call inside a fresh control channel; the reply is checked against its schema. */
async function call<S extends z.ZodMiniType>(t: AdminTarget, method: string, path: string, schema: S, body?: unknown): Promise<z.infer<S>> {
  try {
    const serverKey = await keyToPin({ coordinatorUrl: t.coordinator, coordinatorKey: t.coordinatorKey });
    return await controlCall({ url: t.coordinator, serverKey, staticPrivate: generatePrivateKey() },
      method, `/api/v1/admin/${path}`, schema as z.ZodMiniType<z.infer<S>>, body, { headers: { authorization: `Bearer ${t.token}` } });
  } catch (err) {
    if (err instanceof CoordinatorRefusedError) throw new AdminRequestError(err.reason);
    throw new AdminRequestError((err as Error).message.split('\n')[0]!);
  }
}

/** A node id, or the id of the node with that name. */
async function resolveNode(t: AdminTarget, ref: string): Promise<Node> {
  const { nodes } = await call(t, 'GET', 'nodes', NodeList);
  const node = /^\d+$/.test(ref) ? nodes.find((n) => n.id === Number(ref)) : nodes.find((n) => n.name === ref.toLowerCase());
  if (!node) throw new AdminRequestError(`no node ${/^\d+$/.test(ref) ? 'with id' : 'named'} ${ref}`);
  return node;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** '-' for null; anything but printable characters (a coordinator older or odder than ours) as '?'. */
const printable = (text: string | null): string => (text === null ? '-' : text.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, '?').slice(0, 64));
const when = (iso: string | null): string => (iso === null ? '-' : iso.replace(/\.\d+Z$/, 'Z'));
const list = (xs: string[]): string => (xs.length === 0 ? '-' : xs.join(','));

function keyState(k: AuthKey): string {
  if (k.revoked) return 'revoked';
  if (k.expiresAt !== null && Date.parse(k.expiresAt) <= Date.now()) return 'expired';
  if (!k.reusable && k.usedCount > 0) return 'used';
  return 'valid';
}

function formatNodes(nodes: Node[]): string {
  if (nodes.length === 0) return 'no nodes';
  // OS and version are the agent's own words: the coordinator validated them; printed printable anyway.
  return table(['ID', 'NAME', 'USER', 'IPV4', 'IPV6', 'STATUS', 'LAST SEEN', 'KEY EXPIRES', 'OS', 'VERSION', 'TAGS'], nodes.map((n) => [
    String(n.id), n.name, n.user ?? '-', n.ipv4, n.ipv6,
    n.keyExpiresAt !== null && Date.parse(n.keyExpiresAt) <= Date.now() ? 'expired' : n.online ? 'online' : 'offline',
    when(n.lastSeen), when(n.keyExpiresAt), printable(n.os), printable(n.version), list(n.tags),
  ]));
}

function formatKeys(keys: AuthKey[]): string {
  if (keys.length === 0) return 'no auth keys';
  return table(['ID', 'PREFIX', 'USE', 'EPHEMERAL', 'USER', 'TAGS', 'USED', 'EXPIRES', 'STATE'], keys.map((k) => [
    String(k.id), k.prefix, k.reusable ? 'reusable' : 'single', k.ephemeral ? 'yes' : 'no', k.user ?? '-', list(k.tags), String(k.usedCount), when(k.expiresAt), keyState(k),
  ]));
}

/** The live mesh: one row per reporting node and peer, the reason when not direct. */
export function formatPaths(r: AdminPaths): string {
  const rows = r.nodes.flatMap((n) => n.peers.map((p) => [
    n.name, p.peerName, p.path, p.path === 'relay' ? p.relay ?? '-' : p.endpoint ?? '-',
    p.latencyMs === null ? '-' : String(Math.round(p.latencyMs * 10) / 10),
    `${p.tried.candidates}/${p.tried.pingsSent}/${p.tried.pongsReceived}`, p.whyNotDirect ?? '-',
  ]));
  if (rows.length === 0) return r.nodes.length === 0 ? 'no path reports yet' : 'no peers in the path reports';
  const nat = r.nodes.filter((n) => n.natType !== null).map((n) => `${n.name}: ${n.natType}`);
  return table(['NODE', 'PEER', 'PATH', 'VIA', 'MS', 'TRIED', 'WHY NOT DIRECT'], rows)
    + (nat.length > 0 ? `\nNAT (netcheck): ${nat.join('; ')}` : '')
    + '\nTRIED: candidates/pings sent/pongs received';
}

function out(text: string): void {
  process.stdout.write(`${text}\n`);
}

function json(value: unknown): void {
  out(JSON.stringify(value, null, 2));
}

type Action = (t: AdminTarget, args: string[], opts: Record<string, unknown>) => Promise<void>;

/** A leaf subcommand with --json, whose action gets the admin target resolved. */
function leaf(parent: Command, spec: string, description: string, action: Action): Command {
  const cmd = parent.command(spec).description(description).option('--json', 'machine-readable output');
  cmd.action(async (...params: unknown[]) => {
    const self = params[params.length - 1] as Command;
    const args = params.slice(0, -2).flat() as string[];
    await action(target(self), args, self.opts());
  });
  return cmd;
}

export function registerAdminCommand(program: Command): void {
  const admin = program.command('admin')
    .description('manage a coordinator: auth keys, nodes, routes, policy')
    .option('--coordinator <url>', 'coordinator URL, e.g. http://127.0.0.1:8080 (a #FINGERPRINT suffix pins its key)')
    .addOption(new Option('--coordinator-key <fingerprint>', 'the coordinator key to pin: its fingerprint or base64 key').env('PINHOLE_COORDINATOR_KEY'))
    .option('--coordinator-key-file <file>', 'file holding the coordinator key fingerprint')
    .option('--token-file <file>', 'file holding the admin token (keeps it off the command line)')
    .addOption(new Option('--token <token>', 'admin API token (prefer --token-file or PINHOLE_ADMIN_TOKEN)').env('PINHOLE_ADMIN_TOKEN'));

  const key = admin.command('coordinator-key').description('rotate the coordinator\'s key (docs/security.md)');
  const keyLine = (k: CoordinatorKeyState): string => `current ${k.current.fingerprint}${k.next ? `, next ${k.next.fingerprint} (rotation running; new auth keys name it)` : ''}`;
  leaf(key, 'show', 'show the current (and next) coordinator key', async (t, _a, o) => {
    const k = await call(t, 'GET', 'coordinator-key', CoordinatorKeyState);
    if (o.json) json(k); else out(keyLine(k));
  });
  leaf(key, 'rotate', 'start a rotation: a next key, announced to every agent inside its channel', async (t, _a, o) => {
    const k = await call(t, 'POST', 'coordinator-key/rotate', CoordinatorKeyState);
    if (o.json) json(k); else out(keyLine(k));
  });
  leaf(key, 'finish', 'end the rotation: the next key becomes the only key', async (t, _a, o) => {
    const k = await call(t, 'POST', 'coordinator-key/finish', CoordinatorKeyState);
    if (o.json) json(k); else out(`${keyLine(k)}; pin it in admin commands: --coordinator-key ${k.current.fingerprint}`);
  });

  const authkey = admin.command('authkey').description('create, list and revoke auth keys');
  leaf(authkey, 'create', 'create an auth key (its secret is shown once)', async (t, _args, o) => {
    let expiry: number | undefined;
    try {
      expiry = o.expiry === undefined ? undefined : Math.ceil(parseDuration(String(o.expiry)) / 1000);
    } catch (err) {
      throw new AdminRequestError(`--expiry: ${(err as Error).message}`);
    }
    for (const tag of (o.tag as string[] | undefined) ?? []) {
      if (!Tag.safeParse(tag).success) throw new AdminRequestError(`--tag ${tag}: ${TAG_RULE}`);
    }
    const k = await call(t, 'POST', 'authkeys', AuthKeyCreated, {
      reusable: Boolean(o.reusable), ephemeral: Boolean(o.ephemeral), tags: (o.tag as string[] | undefined) ?? [],
      ...(expiry === undefined ? {} : { expirySeconds: expiry }),
      ...(o.user === undefined ? {} : { user: String(o.user) }),
    });
    if (o.json) return json(k);
    out(k.key);
    out(`id ${k.id}, ${k.reusable ? 'reusable' : 'single-use'}${k.ephemeral ? ', ephemeral' : ''}, expires ${when(k.expiresAt)}, ${k.user === null ? '' : `user ${k.user}, `}tags ${list(k.tags)}; the key is shown only this once`);
  }).option('--reusable', 'may register any number of nodes')
    .option('--ephemeral', 'nodes registered with it are deleted after going offline')
    .option('--expiry <duration>', 'key lifetime, e.g. 1h, 30d (default: never expires)')
    .option('--tag <tag>', 'tag for the nodes it registers (repeatable)', (v: string, acc: string[] = []) => [...acc, v])
    .option('--user <name>', 'owner of the nodes it registers (policy selector user:NAME)');
  leaf(authkey, 'list', 'list auth keys', async (t, _a, o) => {
    const { authKeys } = await call(t, 'GET', 'authkeys', AuthKeyList);
    if (o.json) json(authKeys);
    else out(formatKeys(authKeys));
  });
  leaf(authkey, 'revoke <id>', 'revoke an auth key', async (t, [id], o) => {
    if (!/^\d+$/.test(id!)) throw new AdminRequestError(`auth key id must be a number: ${id}`);
    const k = await call(t, 'DELETE', `authkeys/${id}`, AuthKeyInfo);
    if (o.json) json(k);
    else out(`revoked auth key ${k.id} (${k.prefix})`);
  });

  const nodes = admin.command('nodes').description('list, delete and expire nodes');
  leaf(nodes, 'list', 'list nodes', async (t, _a, o) => {
    const r = await call(t, 'GET', 'nodes', NodeList);
    if (o.json) json(r.nodes);
    else out(formatNodes(r.nodes));
  });
  leaf(nodes, 'delete <node>', 'delete a node (by id or name)', async (t, [ref], o) => {
    const n = await resolveNode(t, ref!);
    const deleted = await call(t, 'DELETE', `nodes/${n.id}`, NodeInfo);
    if (o.json) json(deleted);
    else out(`deleted node ${deleted.id} (${deleted.name})`);
  });
  leaf(nodes, 'expire <node>', 'expire a node key now: the node must re-authenticate', async (t, [ref], o) => {
    const n = await resolveNode(t, ref!);
    const expired = await call(t, 'POST', `nodes/${n.id}/expire`, NodeInfo);
    if (o.json) json(expired);
    else out(`expired node ${expired.id} (${expired.name}): it must re-authenticate with an auth key`);
  });

  leaf(nodes, 'rename <node> <new-name>', 'rename a node (its peers and MagicDNS learn the new name)', async (t, [ref, newName], o) => {
    const checked = Hostname.safeParse(newName);
    if (!checked.success) throw new AdminRequestError(`new name ${JSON.stringify(newName)}: ${checked.error.issues[0]?.message ?? 'invalid'}`);
    const n = await resolveNode(t, ref!);
    const renamed = await call(t, 'POST', `nodes/${n.id}/rename`, NodeInfo, { name: checked.data });
    if (o.json) json(renamed);
    else out(`renamed node ${renamed.id}: ${n.name} → ${renamed.name}`);
  });

  const routes = admin.command('routes').description('list, approve and unapprove advertised routes');
  leaf(routes, 'list', 'list advertised routes and whether they are approved', async (t, _a, o) => {
    const r = await call(t, 'GET', 'routes', RouteList);
    if (o.json) return json(r.routes);
    out(r.routes.length === 0 ? 'no advertised routes' : table(['NODE', 'ID', 'ROUTE', 'APPROVED'], r.routes.map((x) => [x.node, String(x.nodeId), x.route + (x.exitNode ? ' (exit)' : ''), x.approved ? 'yes' : 'no'])));
  });
  const checkCidrs = (cidrs: string[]): void => {
    for (const c of cidrs) {
      try {
        canonicalRoute(c, { strict: true });
      } catch (err) {
        throw new AdminRequestError((err as Error).message);
      }
    }
  };
  leaf(routes, 'approve <node> <cidr...>', 'approve routes a node advertises (0.0.0.0/0 and ::/0 for an exit node)', async (t, [ref, ...cidrs], o) => {
    checkCidrs(cidrs);
    const n = await resolveNode(t, ref!);
    const updated = await call(t, 'POST', `nodes/${n.id}/routes`, NodeInfo, { routes: cidrs });
    if (o.json) json(updated);
    else out(`node ${updated.name}: serving ${list(updated.routes)}`);
  });
  leaf(routes, 'unapprove <node> <cidr...>', 'withdraw approvals: peers stop sending those routes through the node', async (t, [ref, ...cidrs], o) => {
    checkCidrs(cidrs);
    const n = await resolveNode(t, ref!);
    const updated = await call(t, 'POST', `nodes/${n.id}/routes/unapprove`, NodeInfo, { routes: cidrs });
    if (o.json) json(updated);
    else out(`node ${updated.name}: serving ${list(updated.routes)}`);
  });

  const policy = admin.command('policy').description('show or replace the access policy');
  leaf(policy, 'get', 'print the access policy', async (t, _a, o) => {
    const r = await call(t, 'GET', 'policy', PolicyReply);
    if (o.json) json(r);
    else out(r.policy === null ? 'no policy: every node sees every node' : JSON.stringify(r.policy, null, 2));
  });
  leaf(policy, 'set <file>', 'replace the access policy with a JSON file ("-": stdin)', async (t, [file], o) => {
    let text: string;
    try {
      text = file === '-' ? await readStdin() : await readFile(file!, 'utf8');
    } catch (err) {
      throw new AdminRequestError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const name = file === '-' ? 'stdin' : file!;
    let checked = checkPolicyText(name, text);
    if (!checked.ok && checked.hostnames.length > 0) {
      // Name the node each refused hostname belongs to now, so the fix is one copy away.
      const nodes = await call(t, 'GET', 'nodes', NodeList).then((r) => r.nodes, () => []);
      checked = checkPolicyText(name, text, new Map(nodes.map((n) => [n.name, n.id])));
    }
    if (!checked.ok) {
      // One line per error, nothing sent: the policy in force stays as it is.
      for (const e of checked.errors.slice(0, -1)) process.stderr.write(`pinhole: ${e}\n`);
      throw new AdminRequestError(checked.errors[checked.errors.length - 1]!);
    }
    const r = await call(t, 'PUT', 'policy', PolicyReply, checked.policy);
    if (o.json) json(r);
    else out(`policy updated: ${r.policy?.acls.length ?? 0} ACL rule(s)`);
  });

  const paths = admin.command('paths').description('the live mesh: each node\'s path to each peer, and why it is not direct');
  paths.option('--json', 'machine-readable output').action(async (_o: unknown, self: Command) => {
    const r = await call(target(self), 'GET', 'paths', AdminPaths);
    if (self.opts().json) json(r);
    else out(formatPaths(r));
  });

  admin.addHelpText('after', () => `\nVerbs:\n${adminVerbs(admin).join('\n')}`);
}

/** "  authkey create|list|revoke" per noun: commander's help lists only the nouns. */
function adminVerbs(admin: Command): string[] {
  return admin.commands.map((noun) => `  ${noun.name()}${noun.commands.length > 0 ? ` ${noun.commands.map((v) => v.name()).join('|')}` : ''}`);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
