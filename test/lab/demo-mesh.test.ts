// The mesh demo (scripts/demo-mesh.ts) as a user runs it: a relay, a coordinator, an auth key,
// five agents behind five different NATs that join with `pinhole up`; every pair connects, the
// table says which went direct and which are relayed (as the classic NAT table predicts), ping
// works both ways, `pinhole status` and `pinhole ping` show the paths; then the open node becomes
// an approved exit node and sym-a (symmetric NAT) downloads a page from a web server on the lab
// internet through it: intact (sha256), seen by the server from the exit node's address, with no
// nftables rules and forwarding off on the exit node. Nothing of the run is left behind. Needs root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { listNamespaces } from '../../scripts/natlab/index.js';
import { REPO_ROOT } from '../../scripts/tunnels/paths.js';

const run = promisify(execFile);

async function demo(): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(REPO_ROOT, 'dist', 'scripts', 'demo-mesh.js')], { cwd: REPO_ROOT, timeout: 120_000 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

// Two symmetric NATs stay relayed; a symmetric NAT facing a port-restricted one goes direct by birthday probing.
const RELAYED = new Set(['sym-a x sym-b']);

function running(pid: number, argvPart: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes(argvPart);
  } catch { return false; }
}

test('mesh demo: five agents behind five NATs join with an auth key, every pair connects direct or relayed as expected, a page comes through an exit node, nothing left behind', { timeout: 150_000 }, async () => {
  const { code, output } = await demo();
  assert.equal(code, 0, `demo exited ${code}:\n${output}`);
  const relayPid = Number(output.match(/relay started: ws:\/\/203\.0\.113\.\d+:3340\/relay \(pid (\d+)\)/)?.[1]);
  assert.ok(relayPid > 0, 'the relay started');
  assert.match(output, /coordinator started: http:\/\/203\.0\.113\.\d+:8080 \(pid \d+/);
  assert.match(output, /--relay lab=ws:\/\/203\.0\.113\.\d+:3340\/relay/, 'the coordinator publishes the relay');
  assert.match(output, /auth key created: /);
  const joining = output.slice(output.indexOf('== 5. '), output.indexOf('== 6. '));
  const assigned = [...joining.matchAll(/address assigned (100\.\d+\.\d+\.\d+) /g)].map((m) => m[1]);
  assert.equal(assigned.length, 5, 'five agents got an address');
  assert.equal(new Set(assigned).size, 5);

  // The table: every unordered pair once, on the path the classic table expects.
  const rows = [...output.matchAll(/^ {2}([\w-]+ x [\w-]+) +(direct|relay|none) +(direct|relay) +([\d.]+ ms|none) /gm)];
  assert.equal(rows.length, 10, 'ten pairs in the table');
  for (const [, pair, path, expected, first] of rows) {
    assert.equal(path, expected, `${pair}: path ${path}, expected ${expected}`);
    assert.equal(path, RELAYED.has(pair!) ? 'relay' : 'direct', `${pair} per the NAT table`);
    assert.notEqual(first, 'none', `${pair} answered its first ping`);
  }
  assert.match(output, /9 pairs direct, 1 relayed; every pair on its expected path/);
  const pings = [...output.matchAll(/^ {2}([\w-]+) \(100\.[\d.]+\) -> ([\w-]+) \(100\.[\d.]+\): 3\/3 replies, avg [\d.]+ ms$/gm)];
  assert.equal(pings.length, 20, 'all twenty ordered pairs answered');

  assert.match(output, /pinhole status\n {2}node: sym-a \(100\./);
  assert.equal(output.match(/^ {2}peer: (open|fullcone|portrestr|sym-b) \(/gm)?.length, 4, 'status lists the four peers');
  assert.equal(output.match(/^ {4}path: direct/gm)?.length, 3, 'sym-a is direct to open, fullcone and (by birthday probing) portrestr');
  assert.equal(output.match(/^ {4}path: relay/gm)?.length, 1, 'sym-a is relayed to sym-b');
  assert.equal(output.match(/^ {2}pong from sym-b \(100\.[\d.]+\) via relay lab in [\d.]+ ms$/gm)?.length, 3, '`pinhole ping sym-b` goes via the relay');
  assert.equal(output.match(/^ {2}pong from open \(100\.[\d.]+\) via \d+\.\d+\.\d+\.\d+:\d+ in [\d.]+ ms$/gm)?.length, 3, '`pinhole ping open` goes direct');

  // The exit node step.
  const exitStep = output.slice(output.indexOf('== 8. Exit node'), output.indexOf('== 9. '));
  assert.ok(exitStep.length > 0, 'the demo has an exit node step');
  const served = exitStep.match(/serves 1048576 bytes, sha256 ([0-9a-f]{64})/)?.[1];
  assert.ok(served, 'the web server says what it serves');
  const natSeen = exitStep.match(/without an exit node\n {2}HTTP 200, 1048576 bytes; the server saw (198\.51\.100\.\d+):\d+ \(sym-a's NAT, (198\.51\.100\.\d+)\)/);
  assert.ok(natSeen, 'without an exit node the server sees sym-a\'s NAT');
  assert.equal(natSeen[1], natSeen[2]);
  assert.match(exitStep, /pending approval: 0\.0\.0\.0\/0, ::\/0 \(pinhole admin routes approve open /);
  assert.match(exitStep, /^ {2}open {2}\d+ +0\.0\.0\.0\/0 \(exit\) +yes$/m, 'the admin approved the exit node');
  assert.match(exitStep, /^ {2}exit node: open \(active\)$/m);
  assert.match(exitStep, /ip route get 192\.0\.2\.\d+ +-> dev pm[0-9a-f]+\n/, 'the internet goes into the tunnel');
  const got = exitStep.match(/through the exit node\n {2}HTTP 200, 1048576 bytes, sha256 ([0-9a-f]{64}) \(matches the server's\)/);
  assert.ok(got, `the page came through the exit node:\n${exitStep}`);
  assert.equal(got[1], served, 'the page arrived intact');
  const seen = exitStep.match(/the server saw the request from ([\d.]+):\d+: open's address \(([\d.]+)\), not sym-a's NAT/);
  assert.ok(seen, 'the server saw the exit node');
  assert.equal(seen[1], seen[2]);
  assert.notEqual(seen[1], natSeen[1], 'not the client\'s NAT address');
  assert.match(seen[1]!, /^198\.18\.\d+\.2$/, 'the open node\'s own address');
  assert.match(exitStep, /open\$ nft list ruleset +-> \(empty\)$/m);
  assert.match(exitStep, /open\$ sysctl net\.ipv4\.ip_forward -> 0$/m);
  assert.match(exitStep, /pinhole up --exit-node ""\n[\s\S]*ip route get 192\.0\.2\.\d+ +-> dev eth0\n/, 'dropping the exit node puts the route back');
  assert.match(exitStep, /exit node: page fetched intact through it, the server saw the exit node/);
  assert.match(output, /OK: five nodes behind five NATs/);

  const prefix = output.match(/natlab (nl-mesh-[a-z0-9]+)/)?.[1];
  assert.ok(prefix, 'the demo names its lab');
  const left = (await listNamespaces()).filter((ns) => ns.startsWith(`${prefix}-`));
  assert.deepEqual(left, [], 'no namespace of the run is left');
  const tuns = [...output.matchAll(/--tun (pm[0-9a-f]+)/g)].map((m) => m[1]!);
  assert.equal(tuns.length, 5);
  for (const tun of tuns) {
    const r = await run('pgrep', ['-f', '--', `--tun ${tun}`]).then(() => 'running', () => 'gone');
    assert.equal(r, 'gone', `agent with --tun ${tun} still running`);
  }
  assert.equal(running(relayPid, 'relay'), false, 'the relay process is gone');
});
