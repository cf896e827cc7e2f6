// Who may call what on the local API, decided from the caller's kernel credentials (SO_PEERCRED).
// Pure: credentials, groups and stat results come in, decisions and one-line reasons go out.
//
// The rule (docs/security-localapi.md):
// - 'change' calls (up, down, logout, exit node, routes: anything that alters prefs or state)
//   need uid 0, the agent's own uid, or membership in the admin group;
// - 'read' calls (status, ip, netcheck, ping) are also open to the operator group;
// - the socket file is the kernel's gate in front of that: 0600 owned by the agent when no group
//   is named, else 0660 with the operator group (or, without one, the admin group) as its group.
//   One file has one group, so when both groups are named the admins reach the socket through
//   the operator group: admins should be operators too.

export type LocalApiAccess = 'read' | 'change';

/** The kernel's record of the connecting process. */
export interface CallerCred {
  pid: number;
  uid: number;
  /** Effective gid. */
  gid: number;
  /** Supplementary groups. */
  groups: readonly number[];
}

export interface NamedGroup {
  name: string;
  gid: number;
}

export interface AccessPolicy {
  /** The agent's own uid: as trusted as root (it could ptrace the agent anyway). */
  agentUid: number;
  /** `pinhole agent --admin-group`: may change state. */
  admin?: NamedGroup;
  /** `pinhole agent --operator-group`: may read status. */
  operator?: NamedGroup;
}

export type AccessDecision = { allowed: true } | { allowed: false; reason: string };

export function isMember(cred: CallerCred, gid: number): boolean {
  return cred.gid === gid || cred.groups.includes(gid);
}

/** May this caller make a call of this kind? `verb` names the call in the refusal ("up needs ..."). */
export function authorize(policy: AccessPolicy, cred: CallerCred, access: LocalApiAccess, verb: string): AccessDecision {
  if (cred.uid === 0 || cred.uid === policy.agentUid) return { allowed: true };
  const groups = access === 'change' ? [policy.admin] : [policy.admin, policy.operator];
  const named = groups.filter((g): g is NamedGroup => g !== undefined);
  if (named.some((g) => isMember(cred, g.gid))) return { allowed: true };
  const names = [...new Set(named.map((g) => g.name))];
  if (names.length === 0) {
    const flag = access === 'change' ? '--admin-group' : '--operator-group or --admin-group';
    return { allowed: false, reason: `${verb} needs root (the agent was started without ${flag})` };
  }
  return { allowed: false, reason: `${verb} needs root or membership in group ${names.join(' or ')}` };
}

/** Mode and group of the socket file; gid null leaves the agent's own group. */
export function socketPermissions(policy: AccessPolicy): { mode: number; gid: number | null } {
  const group = policy.operator ?? policy.admin;
  return group ? { mode: 0o660, gid: group.gid } : { mode: 0o600, gid: null };
}

/** What stat() says about the socket's directory. */
export interface DirStat {
  isDirectory: boolean;
  uid: number;
  mode: number;
}

const STICKY = 0o1000;

/**
 * Why the socket may not live in this directory, or null if it may: it must be a directory owned
 * by root or the agent, and not writable by group/others unless sticky (so nobody else can
 * replace the socket under the agent or swap in their own).
 */
export function socketDirProblem(dir: string, st: DirStat, agentUid: number): string | null {
  if (!st.isDirectory) return `${dir} is not a directory`;
  if (st.uid !== 0 && st.uid !== agentUid) return `${dir} is owned by uid ${st.uid}, not root or the agent's user`;
  if ((st.mode & 0o022) !== 0 && (st.mode & STICKY) === 0) {
    return `${dir} is writable by ${st.mode & 0o020 ? 'its group' : 'others'} without the sticky bit (chmod go-w ${dir})`;
  }
  return null;
}

/**
 * The gids on the `Groups:` line of /proc/PID/status (the fallback for kernels without
 * SO_PEERGROUPS); null when the line is missing or malformed, so the caller can refuse.
 */
export function parseProcStatusGroups(statusText: string): number[] | null {
  const line = statusText.split('\n').find((l) => l.startsWith('Groups:'));
  if (line === undefined) return null;
  const fields = line.slice('Groups:'.length).trim();
  if (fields === '') return [];
  const gids: number[] = [];
  for (const f of fields.split(/\s+/)) {
    if (!/^\d{1,10}$/.test(f)) return null;
    const n = Number(f);
    if (n > 0xffffffff) return null;
    gids.push(n);
  }
  return gids;
}
