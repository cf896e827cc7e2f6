// What an agent says about itself at registration (agent/platform-info.ts) and how the coordinator
// checks it (proto/control/schemas.ts AgentOs, AgentVersion, RegisterRequest): whatever an
// os-release file or package.json holds, the agent sends values the coordinator accepts; the
// coordinator accepts only bounded text without control characters and never throws on garbage;
// a registration without the fields (an older agent) still parses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { boundedText, distributionOf, osDescription, platformInfo } from '../../agent/platform-info.js';
import { AgentOs, AgentVersion, MAX_AGENT_OS, MAX_AGENT_VERSION, RegisterRequest } from '../../proto/control/schemas.js';

const KEY = Buffer.alloc(32, 1).toString('base64');
const CONTROL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

test('distributionOf reads ID and VERSION_ID, quoted or not; nothing else', () => {
  assert.equal(distributionOf('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'), 'debian 12');
  assert.equal(distributionOf('ID=arch\n'), 'arch');
  assert.equal(distributionOf('NAME=whatever\n'), '');
  assert.equal(distributionOf(''), '');
});

test('osDescription: the platform alone without os-release; a hostile os-release is cut to what the coordinator accepts', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pinhole-osrel-'));
  try {
    assert.equal(osDescription('linux', join(dir, 'missing')), 'linux');
    assert.equal(osDescription('darwin', join(dir, 'missing')), 'darwin');
    const file = join(dir, 'os-release');
    await writeFile(file, `ID="evil\u001b[31m${'x'.repeat(200)}"\nVERSION_ID=1\n`);
    const os = osDescription('linux', file);
    assert.ok(AgentOs.safeParse(os).success, os);
    assert.ok(os.startsWith('linux evil[31m'), os);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const mine = platformInfo();
  assert.ok(RegisterRequest.safeParse({ nodeKey: KEY, discoKey: KEY, hostname: 'h', ...mine }).success, JSON.stringify(mine));
});

test('property: whatever the source text, the agent sends values the coordinator accepts (or falls back)', () => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 100 }), (id, versionId) => {
    const os = boundedText(`linux ${distributionOf(`ID=${id}\nVERSION_ID=${versionId}\n`)}`, MAX_AGENT_OS) || 'unknown';
    assert.ok(AgentOs.safeParse(os).success, JSON.stringify(os));
    const version = boundedText(versionId, MAX_AGENT_VERSION) || 'unknown';
    assert.ok(AgentVersion.safeParse(version).success, JSON.stringify(version));
  }), { numRuns: 500 });
});

test('property: the coordinator accepts only bounded text without control characters, and never throws', () => {
  fc.assert(fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 80 }), fc.anything()), fc.oneof(fc.string({ maxLength: 40 }), fc.anything()), (os, version) => {
    const r = RegisterRequest.safeParse({ nodeKey: KEY, discoKey: KEY, hostname: 'h', os, version });
    if (!r.success) return;
    for (const [v, max] of [[r.data.os, MAX_AGENT_OS], [r.data.version, MAX_AGENT_VERSION]] as const) {
      if (v === undefined) continue; // left out: an older agent's registration
      assert.equal(v.trim(), v, 'no surrounding spaces');
      assert.ok(v!.length >= 1 && v!.length <= max);
      assert.ok(!CONTROL.test(v!), JSON.stringify(v));
    }
  }), { numRuns: 1000 });
  assert.equal(RegisterRequest.safeParse({ nodeKey: KEY, discoKey: KEY, hostname: 'h', os: 'linux\n' }).success, false);
  assert.equal(RegisterRequest.safeParse({ nodeKey: KEY, discoKey: KEY, hostname: 'h', version: '1.0\u202e' }).success, false, 'a bidi override is refused');
  assert.equal(RegisterRequest.safeParse({ nodeKey: KEY, discoKey: KEY, hostname: 'h', os: 'x'.repeat(65) }).success, false);
  assert.equal(RegisterRequest.safeParse({ nodeKey: KEY, discoKey: KEY, hostname: 'h', os: ' ' }).success, false, 'blank');
  const old = RegisterRequest.safeParse({ nodeKey: KEY, discoKey: KEY, hostname: 'h' });
  assert.ok(old.success && old.data.os === undefined && old.data.version === undefined, 'an older agent without the fields');
});
