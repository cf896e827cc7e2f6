// `pinhole agent --config-file`: YAML in, a config or one "FILE:LINE: reason" out, never a crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { ConfigFileError, parseAgentConfig } from '../../agent/config/agent-config-file.js';

const GOOD = `# a laptop
state-dir: /var/lib/pinhole
socket: /run/pinhole/pinhole.sock
tun: pinhole0
port: 41641
admin-group: pinhole-admins
up:
  coordinator: https://coord.example.net:8080
  auth-key-file: /etc/pinhole/auth.key
  hostname: laptop
  advertise-routes: [198.18.5.0/24]
  accept-routes: true
`;

test('a good file gives every setting', () => {
  assert.deepEqual(parseAgentConfig('a.yaml', GOOD), {
    stateDir: '/var/lib/pinhole', socket: '/run/pinhole/pinhole.sock', tun: 'pinhole0', port: 41641, adminGroup: 'pinhole-admins',
    up: { coordinator: 'https://coord.example.net:8080', authKeyFile: '/etc/pinhole/auth.key', hostname: 'laptop', advertiseRoutes: ['198.18.5.0/24'], acceptRoutes: true },
  });
  assert.deepEqual(parseAgentConfig('e.yaml', ''), {});
  // Replicas: a list, passed on as the comma-separated list the agent takes on its command line.
  assert.deepEqual(parseAgentConfig('r.yaml', 'up:\n  coordinator: [http://198.51.100.1:8080, http://198.51.100.2:8080]\n').up,
    { coordinator: 'http://198.51.100.1:8080,http://198.51.100.2:8080' });
  assert.deepEqual(parseAgentConfig('p.yaml', 'portmap: false\nportmap-protocol: nat-pmp\nportmap-lease: 600\n'), { portmap: false, portmapProtocol: 'nat-pmp', portmapLease: 600 });
});

const refusals: [string, string][] = [
  ['state-dir: /x\nstatedir: /y\n', 'a.yaml:2: statedir: unknown key'],
  ['state-dir: /x\nup:\n  coordinator: http://192.0.2.1:8080\n  accept_routes: true\n', 'a.yaml:4: up.accept_routes: unknown key'],
  ['port: 99999\n', 'a.yaml:1: port: port out of range (0-65535)'],
  ['tun: "a very long tun name"\n', 'a.yaml:1: tun: a TUN name: 1-15 letters, digits, _=+.-'],
  ['up:\n  coordinator: http://192.0.2.1:8080\n  auth-key: tskey-secret\n', 'a.yaml:3: auth-key: the key itself does not go in the config file; put it in a 0600 file and name it with up: auth-key-file'],
  ['up:\n  coordinator: http://192.0.2.1:8080\n  advertise-routes:\n    - 198.18.5.0/24\n    - 192.0.2.129/26\n', 'a.yaml:5: up.advertise-routes.1: 192.0.2.129/26 has host bits set: did you mean 192.0.2.128/26?'],
  ['up:\n  coordinator: 192.0.2.1\n', 'a.yaml:2: up.coordinator: a coordinator URL like https://coord.example.net:8080'],
  ['up:\n  hostname: x\n', 'a.yaml:1: up.coordinator: a coordinator URL, or a list of them (replicas)'],
  ['up:\n  coordinator: [http://192.0.2.1:8080, ftp://192.0.2.2]\n', 'a.yaml:2: up.coordinator.1: a coordinator URL like https://coord.example.net:8080'],
  ['up:\n  coordinator: []\n', 'a.yaml:2: up.coordinator: at least one coordinator URL'],
  ['state-dir: [1\n', 'a.yaml:2: not valid YAML'],
  ['- a\n- b\n', 'a.yaml:1: expected keys like state-dir: /var/lib/pinhole'],
  ['port: 1\nport: 2\n', 'a.yaml:2: not valid YAML'],
  ['portmap-lease: 1\n', 'a.yaml:1: portmap-lease: a lease from 2 to 604800 seconds'],
  ['portmap-protocol: natpmp\n', 'a.yaml:1: portmap-protocol: '],
];

for (const [text, want] of refusals) {
  test(`refused: ${want}`, () => {
    assert.throws(() => parseAgentConfig('a.yaml', text), (err: Error) => {
      assert.ok(err instanceof ConfigFileError, `${err.name}: ${err.message}`);
      assert.ok(err.message.startsWith(want), `got: ${err.message}`);
      assert.ok(!err.message.includes('\n'), 'one line');
      return true;
    });
  });
}

const outcome = (text: string): void => {
  try {
    parseAgentConfig('f.yaml', text);
  } catch (err) {
    if (!(err instanceof ConfigFileError)) throw err;
    assert.match(err.message, /^f\.yaml:\d+: /);
    assert.ok(!err.message.includes('\n'));
  }
};

test('fuzz: garbage text is a config or a FILE:LINE error, never a crash', () => {
  fc.assert(fc.property(fc.string({ maxLength: 400 }), (s) => outcome(s)), { numRuns: 2000 });
  fc.assert(fc.property(fc.array(fc.constantFrom('state-dir', 'port', 'up', ':', ' ', '\n', '  ', '-', '[', ']', '{', '}', '"', '&a', '*a', '!!str', '#', 'coordinator', 'tun', '99999', 'true', 'http://x'), { maxLength: 60 }), (parts) => outcome(parts.join(''))), { numRuns: 2000 });
});

test('fuzz: random YAML documents of plausible keys are a config or a FILE:LINE error', () => {
  const key = fc.constantFrom('state-dir', 'socket', 'tun', 'port', 'socket-mark', 'admin-group', 'operator-group', 'bogus', 'coordinator', 'auth-key-file', 'hostname', 'advertise-routes', 'accept-routes', 'exit-node');
  const leaf = fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string({ maxLength: 20 }), { maxLength: 3 }));
  const section = fc.dictionary(key, leaf, { maxKeys: 6 });
  const doc = fc.record({ top: fc.dictionary(key, leaf, { maxKeys: 6 }), up: fc.option(section) });
  fc.assert(fc.property(doc, ({ top, up }) => outcome(stringify(up === null ? top : { ...top, up }))), { numRuns: 2000 });
});
