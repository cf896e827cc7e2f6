// The kernel's word on who is calling (SO_PEERCRED/SO_PEERGROUPS through the native addon) and
// the agent's --admin-group/--operator-group resolved to gids (getgrnam_r, so NSS groups work).
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { loadNative } from '../tun/native.js';
import { parseProcStatusGroups, type AccessPolicy, type CallerCred, type NamedGroup } from './access.js';

export class CallerUnknownError extends Error {
  override readonly name = 'CallerUnknownError';
}

export class AccessConfigError extends Error {
  override readonly name = 'AccessConfigError';
}

/** Credentials of the process at the other end of an accepted unix-socket connection. */
export function callerOf(socket: Socket): CallerCred {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new CallerUnknownError('the connection has no file descriptor');
  const c = loadNative().peerCred(fd);
  // Kernels before 4.13 lack SO_PEERGROUPS: read the groups now, while the caller has just connected.
  const groups = c.groups ?? parseProcStatusGroups(readProcStatus(c.pid));
  if (groups === null) throw new CallerUnknownError(`cannot read the groups of pid ${c.pid}`);
  return { pid: c.pid, uid: c.uid, gid: c.gid, groups };
}

function readProcStatus(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return '';
  }
}

export interface AccessGroupOptions {
  /** `--admin-group NAME|GID`: may change state. */
  adminGroup?: string;
  /** `--operator-group NAME|GID`: may read status. */
  operatorGroup?: string;
}

/** The agent's access policy; an unknown group is an AccessConfigError naming the flag. */
export function resolveAccessPolicy(opts: AccessGroupOptions): AccessPolicy {
  const policy: AccessPolicy = { agentUid: process.getuid?.() ?? 0 };
  if (opts.adminGroup !== undefined) policy.admin = resolveGroup('--admin-group', opts.adminGroup);
  if (opts.operatorGroup !== undefined) policy.operator = resolveGroup('--operator-group', opts.operatorGroup);
  return policy;
}

function resolveGroup(flag: string, text: string): NamedGroup {
  const native = loadNative();
  const gid = text === '' ? null : native.groupId(text);
  if (gid !== null) return { name: text, gid };
  if (/^\d{1,10}$/.test(text) && Number(text) < 0xffffffff) {
    const n = Number(text);
    return { name: native.groupName(n) ?? text, gid: n };
  }
  throw new AccessConfigError(`${flag}: no group named ${JSON.stringify(text)} on this host`);
}
