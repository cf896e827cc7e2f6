// Who may call what on the local API: the decision from credentials (access.ts), the socket's
// mode and group, the socket directory rule, the /proc Groups: fallback, and the native
// SO_PEERCRED/SO_PEERGROUPS and group lookups on a real unix socket in this process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  authorize, parseProcStatusGroups, socketDirProblem, socketPermissions, type AccessPolicy, type CallerCred,
} from '../../agent/localapi/access.js';
import { callerOf } from '../../agent/localapi/credentials.js';
import { loadNative } from '../../agent/tun/native.js';

const ADM = { name: 'pinhole-admin', gid: 990 };
const OPS = { name: 'pinhole-ops', gid: 991 };
const both: AccessPolicy = { agentUid: 0, admin: ADM, operator: OPS };
// Node's getgroups() always adds the egid; the kernel lists it only if it is also supplementary.
const supplementary = (gids: readonly number[]): number[] => [...new Set(gids)].filter((g) => g !== process.getegid!()).sort((a, b) => a - b);
const user = (gid: number, groups: number[] = []): CallerCred => ({ pid: 4242, uid: 1000, gid, groups });

test('root and the agent’s own user may do everything, whatever their groups', () => {
  assert.deepEqual(authorize(both, { pid: 1, uid: 0, gid: 0, groups: [] }, 'change', 'up'), { allowed: true });
  const asUser: AccessPolicy = { agentUid: 1000 };
  assert.deepEqual(authorize(asUser, user(1000), 'change', 'logout'), { allowed: true });
});

test('a change needs the admin group, as primary or supplementary group; the operator group is not enough', () => {
  assert.deepEqual(authorize(both, user(100, [ADM.gid]), 'change', 'up'), { allowed: true });
  assert.deepEqual(authorize(both, user(ADM.gid), 'change', 'down'), { allowed: true });
  assert.deepEqual(authorize(both, user(100, [OPS.gid]), 'change', 'up'),
    { allowed: false, reason: 'up needs root or membership in group pinhole-admin' });
  assert.deepEqual(authorize({ agentUid: 0, operator: OPS }, user(100, [OPS.gid]), 'change', 'down'),
    { allowed: false, reason: 'down needs root (the agent was started without --admin-group)' });
});

test('a read is open to the operator and the admin group, and names both when refused', () => {
  assert.deepEqual(authorize(both, user(100, [OPS.gid]), 'read', 'status'), { allowed: true });
  assert.deepEqual(authorize(both, user(100, [7, ADM.gid]), 'read', 'status'), { allowed: true });
  assert.deepEqual(authorize(both, user(100, [7, 8]), 'read', 'status'),
    { allowed: false, reason: 'status needs root or membership in group pinhole-admin or pinhole-ops' });
  assert.deepEqual(authorize({ agentUid: 0 }, user(100), 'read', 'status'),
    { allowed: false, reason: 'status needs root (the agent was started without --operator-group or --admin-group)' });
});

test('the socket is 0600 without groups, else 0660 with the operator group (or the admin group alone)', () => {
  assert.deepEqual(socketPermissions({ agentUid: 0 }), { mode: 0o600, gid: null });
  assert.deepEqual(socketPermissions({ agentUid: 0, admin: ADM }), { mode: 0o660, gid: ADM.gid });
  assert.deepEqual(socketPermissions({ agentUid: 0, operator: OPS }), { mode: 0o660, gid: OPS.gid });
  assert.deepEqual(socketPermissions(both), { mode: 0o660, gid: OPS.gid });
});

test('the socket directory must be root’s or the agent’s, and not writable by others unless sticky', () => {
  const dir = (mode: number, uid = 0, isDirectory = true) => socketDirProblem('/run/x', { isDirectory, uid, mode: 0o040000 | mode }, 0);
  assert.equal(dir(0o755), null);
  assert.equal(dir(0o700), null);
  assert.equal(dir(0o1777), null, '/tmp-like: others cannot remove or rename our socket');
  assert.equal(dir(0o777), '/run/x is writable by its group without the sticky bit (chmod go-w /run/x)');
  assert.equal(dir(0o757), '/run/x is writable by others without the sticky bit (chmod go-w /run/x)');
  assert.equal(dir(0o775), '/run/x is writable by its group without the sticky bit (chmod go-w /run/x)');
  assert.equal(dir(0o755, 1000), '/run/x is owned by uid 1000, not root or the agent\'s user');
  assert.equal(socketDirProblem('/run/x', { isDirectory: true, uid: 1000, mode: 0o40755 }, 1000), null);
  assert.equal(dir(0o644, 0, false), '/run/x is not a directory');
});

test('the /proc Groups: line parses to the same groups as this process has', () => {
  const parsed = parseProcStatusGroups(readFileSync('/proc/self/status', 'utf8'));
  assert.deepEqual(supplementary(parsed ?? []), supplementary(process.getgroups!()));
  assert.deepEqual(parseProcStatusGroups('Name:\tx\nGroups:\t\nUid:\t0\n'), []);
  assert.deepEqual(parseProcStatusGroups('Groups:\t4 24 27 \n'), [4, 24, 27]);
  assert.equal(parseProcStatusGroups('Name:\tx\n'), null, 'no Groups: line');
  assert.equal(parseProcStatusGroups('Groups:\t4 x 27\n'), null);
  assert.equal(parseProcStatusGroups('Groups:\t-1\n'), null);
  assert.equal(parseProcStatusGroups('Groups:\t4294967296\n'), null);
});

test('property: any gid list round-trips through a Groups: line; arbitrary text never throws', () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 40 }), (gids) => {
    const text = `Name:\tx\nGroups:\t${gids.join(' ')}${gids.length ? ' ' : ''}\nNgid:\t0\n`;
    assert.deepEqual(parseProcStatusGroups(text), gids);
  }));
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (junk) => {
    const r = parseProcStatusGroups(`Groups:${junk}`);
    assert.ok(r === null || r.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffffffff));
  }));
});

test('native: SO_PEERCRED and SO_PEERGROUPS name this process at both ends of a unix socket; groups resolve by name and gid', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pinhole-peercred-'));
  const path = join(dir, 's');
  let accept!: (s: Socket) => void;
  const accepted = new Promise<Socket>((resolve) => { accept = resolve; });
  const listener = createServer((s) => { accept(s); listener.close(); });
  await new Promise<void>((resolve) => listener.listen(path, resolve));
  const client = connect(path);
  try {
    const server = await accepted;
    const cred = callerOf(server);
    assert.equal(cred.pid, process.pid);
    assert.equal(cred.uid, process.geteuid!());
    assert.equal(cred.gid, process.getegid!());
    assert.deepEqual(supplementary(cred.groups), supplementary(process.getgroups!()));
    server.destroy();
  } finally {
    client.destroy();
    await rm(dir, { recursive: true, force: true });
  }
  const native = loadNative();
  assert.equal(native.groupId('root'), 0);
  assert.equal(native.groupName(0), 'root');
  assert.equal(native.groupId('no-such-group-pinhole-test'), null);
  assert.equal(native.groupId('root\u0000x'), null, 'an embedded NUL is not a group name');
  assert.throws(() => native.peerCred(2 ** 31 - 1), { code: 'EBADF' });
});
