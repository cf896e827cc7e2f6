// `pinhole agent --config` as a user meets it: keys that wg accepts and vice versa, one-line
// errors for a bad config, a missing privilege or an absent agent, and `status --json`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createLab, type Host, type Lab } from '../../scripts/natlab/index.js';
import { startStaticAgent } from '../../scripts/tunnels/pinhole-static.js';
import { newKeyPair, runId } from '../../scripts/tunnels/keys.js';
import { PINHOLE_BIN } from '../../scripts/tunnels/paths.js';
import { ping } from '../helpers/transfer.js';

const run = promisify(execFile);

async function pinhole(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile('node', [PINHOLE_BIN, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

async function sh(cmd: string): Promise<string> {
  return (await run('sh', ['-c', cmd])).stdout.trim();
}

describe('keys', () => {
  test('pinhole genkey output is accepted by wg pubkey, and gives the same public key', async () => {
    const priv = (await pinhole(['genkey'])).stdout.trim();
    const ours = (await pinhole(['pubkey'], `${priv}\n`)).stdout.trim();
    const theirs = await sh(`echo '${priv}' | wg pubkey`);
    assert.equal(ours, theirs);
  });

  test('wg genkey output is accepted by pinhole pubkey', async () => {
    const priv = await sh('wg genkey');
    const ours = (await pinhole(['pubkey'], `${priv}\n`)).stdout.trim();
    assert.equal(ours, await sh(`echo '${priv}' | wg pubkey`));
  });

  test('a malformed key is one line on stderr and a non-zero exit', async () => {
    const r = await pinhole(['pubkey'], 'not-a-key\n');
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /^pinhole: .*key/i);
  });
});

describe('static mode errors', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'pinhole-static-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  test('an unknown key in the config is refused with its file and line', async () => {
    const conf = join(dir, 'bad0.conf');
    const k = newKeyPair();
    await writeFile(conf, `[Interface]\nPrivateKey = ${k.privateKey}\nListenPort = 51820\nColour = blue\n`);
    const r = await pinhole(['--socket', join(dir, 's.sock'), 'agent', '--config', conf]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`bad0\\.conf:4: .*Colour`));
  });

  test('a bad value is refused with its line', async () => {
    const conf = join(dir, 'bad1.conf');
    const k = newKeyPair();
    await writeFile(conf, `[Interface]\nPrivateKey = ${k.privateKey}\nListenPort = seventy\n`);
    const r = await pinhole(['--socket', join(dir, 's.sock'), 'agent', '--config', conf]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /bad1\.conf:3: .*ListenPort/);
  });

  test('without CAP_NET_ADMIN the agent says so in one line and exits non-zero', async () => {
    const conf = join(dir, 'np0.conf');
    const k = newKeyPair();
    await writeFile(conf, `[Interface]\nPrivateKey = ${k.privateKey}\nAddress = 100.64.3.1/32\n`, { mode: 0o644 });
    await sh(`chmod 755 ${dir}`);
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all',
        'node', PINHOLE_BIN, '--socket', join(dir, 'np.sock'), 'agent', '--config', conf, '--tun', `np${runId()}`],
      { timeout: 20_000 }, (err, _o, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stderr }));
    });
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /permission denied|CAP_NET_ADMIN/i);
  });

  test('status without a running agent is one clear line', async () => {
    const r = await pinhole(['--socket', join(dir, 'nobody.sock'), 'status']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr.trim(), /^pinhole: cannot reach the pinhole agent at .*nobody\.sock: is the agent running\?$/);
  });
});

describe('status --json in static mode', { timeout: 60_000 }, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  before(async () => {
    lab = await createLab({ name: 'stm' });
    a = await lab.addPublicHost('a');
    b = await lab.addPublicHost('b');
  });
  after(async () => { await lab?.destroy(); });

  test('lists each peer with endpoint, last handshake, rx/tx bytes, and drop counters', async () => {
    const id = runId();
    const ka = newKeyPair();
    const kb = newKeyPair();
    const agentB = await startStaticAgent(b, {
      tun: `sb${id}`, privateKey: kb.privateKey, addresses: ['100.64.4.2/32'], listenPort: 53000,
      peers: [{ publicKey: ka.publicKey, allowedIps: ['100.64.4.1/32'] }],
    });
    const agentA = await startStaticAgent(a, {
      tun: `sa${id}`, privateKey: ka.privateKey, addresses: ['100.64.4.1/32'], listenPort: 53000,
      peers: [{ publicKey: kb.publicKey, allowedIps: ['100.64.4.2/32'], endpoint: `${b.ip}:53000` }],
    });
    try {
      assert.ok((await ping(a, '100.64.4.2', 3)).ok);
      const r = await agentA.cli(['status', '--json']);
      assert.equal(r.code, 0, r.stderr);
      const st = JSON.parse(r.stdout);
      assert.equal(st.mode, 'static');
      assert.equal(st.interface.publicKey, ka.publicKey);
      const peer = st.peers[0];
      assert.equal(peer.publicKey, kb.publicKey);
      assert.equal(peer.overlayIp, '100.64.4.2');
      assert.equal(peer.path, 'direct');
      assert.equal(peer.endpoint, `${b.ip}:53000`);
      assert.ok(Date.now() - Date.parse(peer.lastHandshake) < 30_000);
      assert.ok(peer.rxBytes > 0 && peer.txBytes > 0);
      for (const k of ['badTag', 'replay', 'unknownIndex', 'allowedIpsMismatch', 'malformed', 'noRoute']) {
        assert.equal(typeof st.drops[k], 'number', `drop counter ${k}`);
      }
      const human = await agentA.cli(['status']);
      assert.match(human.stdout, /latest handshake: \d+ s ago/);
      assert.match(human.stdout, new RegExp(`path: direct via ${b.ip.replace(/\./g, '\\.')}:53000`));
    } finally {
      await agentA.stop();
      await agentB.stop();
    }
  });
});
