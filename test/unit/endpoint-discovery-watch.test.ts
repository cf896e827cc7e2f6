// The fallback poll of the local addresses: every LOCAL_CHECK_MS while nothing else reports their
// changes, every WATCHED_LOCAL_CHECK_MS while a link monitor runs, and back to the fast poll as soon
// as the monitor is gone (it can die: no `ip`, no netlink). A change it finds is reported.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { EndpointDiscovery, LOCAL_CHECK_MS, WATCHED_LOCAL_CHECK_MS } from '../../agent/magicsock/endpoint-discovery.js';
import type { StunClient } from '../../agent/netcheck/stun-client.js';

test('the local addresses are polled slowly while a link monitor runs, fast without one, and a change is reported', () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  try {
    let watched = true;
    let looks = 0;
    let addrs = ['192.0.2.10:41641'];
    let changes = 0;
    const d = new EndpointDiscovery({
      stun: {} as StunClient, port: () => 41641, exclude: [], servers: () => [], onChange: () => undefined,
      log: pino({ level: 'silent' }), linkWatched: () => watched,
      readLocal: () => { looks++; return addrs; },
      onLocalChange: () => { changes++; },
    });
    d.start();
    assert.equal(looks, 1, 'read once at start');
    mock.timers.tick(WATCHED_LOCAL_CHECK_MS - 1);
    assert.equal(looks, 1, 'no look within the watched interval');
    mock.timers.tick(1);
    assert.equal(looks, 2, 'one look per WATCHED_LOCAL_CHECK_MS while watched');
    watched = false; // the monitor died: the poll after the pending one is fast again
    mock.timers.tick(WATCHED_LOCAL_CHECK_MS);
    assert.equal(looks, 3);
    for (let i = 0; i < 3; i++) mock.timers.tick(LOCAL_CHECK_MS); // (one tick runs only timers armed before it)
    assert.equal(looks, 6, 'every LOCAL_CHECK_MS without a monitor');
    assert.equal(changes, 0);
    addrs = ['198.51.100.7:41641'];
    mock.timers.tick(LOCAL_CHECK_MS);
    assert.equal(changes, 1, 'the poll reports a new address');
    assert.deepEqual(d.endpoints, ['198.51.100.7:41641']);
    d.stop();
    for (let i = 0; i < 10; i++) mock.timers.tick(WATCHED_LOCAL_CHECK_MS);
    assert.equal(looks, 7, 'nothing after stop');
  } finally {
    mock.timers.reset();
  }
});
