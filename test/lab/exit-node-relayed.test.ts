// Exit nodes over a relayed path: the exit node sits behind a port-restricted NAT and the client
// behind a symmetric one, so no direct path exists and every packet goes through the relay. The
// client still reaches the lab internet through the exit node's userspace NAT: an HTTP download
// arrives intact, a UDP request gets its answer, and the server sees the exit node's address.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, type Host, type Lab, type LabProcess } from '../../scripts/natlab/index.js';
import { peerOf, startMesh, waitFor, waitMeshReady, type Mesh } from '../../scripts/traversal/mesh-lab.js';
import { PROBE, probeUntilOk, startProbeServer, type ProbeServer } from '../helpers/routing-lab.js';

const BYTES = 2 * 1024 * 1024;

describe('exit node reached through the relay', { timeout: 300_000 }, () => {
  let lab: Lab;
  let mesh: Mesh | undefined;
  let www: Host;
  let web: LabProcess | undefined;
  let udp: ProbeServer | undefined;
  let served = '';

  before(async () => {
    lab = await createLab({ name: 'exitrel' });
    www = await lab.addPublicHost('www', { ips: 2 });
    mesh = await startMesh(lab, [{ name: 'exitn', nat: 'port-restricted-cone' }, { name: 'client', nat: 'symmetric' }]);
    await waitMeshReady(mesh);
    web = www.spawn(['node', PROBE, 'serve-http', www.ips[1]!, '8080', String(BYTES)]);
    served = (await web.waitForOutput(/^listening ([0-9a-f]{64})$/m, 10_000))[1]!;
    udp = await startProbeServer(www, 'udp', www.ips[1]!, 7001);
    const adv = await mesh.node('exitn').agent.cli(['up', '--advertise-exit-node']);
    assert.equal(adv.code, 0, adv.stderr);
    const ok = await mesh.coord.adminCli(['routes', 'approve', 'exitn', '0.0.0.0/0', '::/0']);
    assert.equal(ok.code, 0, ok.stderr);
    await waitFor('the client to accept the exit node', async () => (await mesh!.node('client').agent.cli(['up', '--exit-node', 'exitn'])).code === 0, 30_000, 500);
  });

  after(async () => {
    if (web?.running) await web.kill('SIGKILL', 100);
    await udp?.stop().catch(() => undefined);
    await mesh?.stop();
    await lab?.destroy();
  });

  test('the pair is relayed, and HTTP and UDP to the internet work through the exit node', async () => {
    const client = mesh!.node('client');
    await probeUntilOk(client.host, 'udp', www.ips[1]!, 7001);
    const r = await client.host.exec(['node', PROBE, 'http-get', `http://${www.ips[1]!}:8080/`, '30000'], { timeoutMs: 40_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `got ${BYTES} ${served}`);
    const sawFrom = [...web!.stdout.matchAll(/^peer (?:::ffff:)?(\S+):\d+$/gm)].pop()?.[1];
    assert.equal(sawFrom, mesh!.node('exitn').site.wanIp, 'the server sees the exit node\'s site, not the client\'s');
    const st = await client.agent.status();
    assert.equal(peerOf(st, 'exitn')?.path, 'relay');
    assert.ok((st.relays ?? []).some((x) => x.framesOut > 0));
    // The agent's TCP connections (relay, coordinator) carry the socket mark: that is what keeps
    // them out of the default route into the tunnel they themselves carry.
    const tcp = (await client.host.run(['ss', '-tneH', 'state', 'established'])).trim().split('\n').filter(Boolean);
    assert.ok(tcp.length >= 2 && tcp.every((l) => /fwmark:0x70680000\b/.test(l)), tcp.join('\n'));
  });
});
