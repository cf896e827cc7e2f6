// Run inside a lab host: `node register-burst.js URL1,URL2,... AUTHKEY COUNT PREFIX` registers
// COUNT simulated nodes at once (node i at URL i mod n, hostname PREFIX-i) and prints one JSON
// line per node: {"status":200,"ipv4":"100.64.0.7","name":"x-3"} or {"status":403,"error":"..."}.
import { SimulatedNode } from './coordinator-node.js';

async function main(): Promise<void> {
  const [urlList, authKey, countText, prefix] = process.argv.slice(2);
  if (!urlList || !authKey || !countText || !prefix) throw new Error('usage: register-burst URL[,URL...] AUTHKEY COUNT PREFIX');
  const urls = urlList.split(',');
  const nodes = Array.from({ length: Number(countText) }, () => new SimulatedNode());
  const results = await Promise.all(nodes.map(async (n, i) => {
    try {
      const r = await n.register(urls[i % urls.length]!, { authKey, hostname: `${prefix}-${i}` });
      return r.status === 200
        ? { status: 200, ipv4: r.body.node.ipv4 as string, name: r.body.node.name as string, id: r.body.node.id as number }
        : { status: r.status, error: (r.body as { error?: string } | null)?.error ?? '' };
    } catch (err) {
      return { status: 0, error: (err as Error).message };
    }
  }));
  process.stdout.write(results.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

main().catch((err: Error) => {
  process.stderr.write(`register-burst: ${err.message}\n`);
  process.exit(1);
});
