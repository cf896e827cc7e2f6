// A registered member that reports endpoints of its choosing: run inside a lab namespace as
//   node dist/test/helpers/lying-member.js COORDINATOR_URL AUTH_KEY HOSTNAME IP:PORT...
// It joins with the real control protocol (SimulatedNode), sends an `endpoints` message naming
// those addresses, prints "reported", and stays connected until killed.
import { SimulatedNode } from './coordinator-node.js';

const [url, authKey, hostname, ...endpoints] = process.argv.slice(2);
if (!url || !authKey || !hostname || endpoints.length === 0) {
  process.stderr.write('usage: lying-member URL AUTH_KEY HOSTNAME IP:PORT...\n');
  process.exit(2);
}
const node = new SimulatedNode();
await node.join(url, { authKey, hostname });
const stream = await node.connect(url);
await stream.waitFor('the netmap', () => stream.netmap !== null, 10_000);
stream.sendEndpoints(endpoints);
process.stdout.write('reported\n');
setInterval(() => undefined, 60_000); // stay a member until killed
