// Lab helper process: a TUN device whose packets go through UserspaceNat.handle(), and whatever
// the NAT emits is written back into the TUN — so the kernel that owns the TUN (after the test
// moves it into a client namespace) is the NAT's client, with its real TCP stack.
//
//   node nat-tun-bridge.js TUN_NAME MTU
// stdin commands, one per line: "status ID" prints "status ID {json}", "loss P" drops a
// fraction P of packets in each direction (deterministic), "exit" closes everything.
import { createInterface } from 'node:readline';
import { TunDevice } from '../../agent/tun/tun-device.js';
import { UserspaceNat } from '../../agent/nat/userspace-nat.js';

const [name, mtuText] = process.argv.slice(2);
const mtu = Number(mtuText ?? 1420);
const dev = await TunDevice.open({ name: name!, mtu });

// Emitted packets are copied into a slab and written in one batch per event-loop turn.
const SLOTS = 256;
const slotSize = 65536 + 64;
const out = Buffer.alloc(SLOTS * slotSize);
const offsets = new Uint32Array(SLOTS).map((_, i) => i * slotSize);
const lengths = new Uint32Array(SLOTS);
let queued = 0;
let flushScheduled = false;
let lossEvery = 0;
let inCount = 0;
let outCount = 0;

function flush(): void {
  flushScheduled = false;
  if (queued > 0) dev.writeBatch(out, offsets, lengths, queued);
  queued = 0;
}

const nat = new UserspaceNat({
  emit(packet) {
    if (lossEvery > 0 && ++outCount % lossEvery === 0) return;
    if (queued === SLOTS) flush();
    out.set(packet, offsets[queued]!);
    lengths[queued++] = packet.length;
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  },
  log: { debug: (m) => process.stderr.write(`${m}\n`), warn: (m) => process.stderr.write(`${m}\n`) },
});

dev.onPackets = (count, rx) => {
  for (let i = 0; i < count; i++) {
    if (lossEvery > 0 && ++inCount % lossEvery === 0) continue;
    nat.handle(rx.buffer.subarray(rx.offsets[i]!, rx.offsets[i]! + rx.lengths[i]!));
  }
};

function shutdown(): void {
  nat.close();
  dev.close();
  process.exit(0);
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === 'status') process.stdout.write(`status ${arg} ${JSON.stringify(nat.status())}\n`);
  else if (cmd === 'loss') lossEvery = Number(arg) > 0 ? Math.round(1 / Number(arg)) : 0;
  else if (cmd === 'exit') shutdown();
});
process.on('SIGTERM', shutdown);
process.stdout.write(`ready ${dev.name}\n`);
