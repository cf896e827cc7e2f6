// One coordinator API request from inside a lab namespace (the test process itself lives outside
// the lab): GET /api/v1/server in the clear, everything else inside a control channel under a
// throwaway static key (the admin token, if given, travels only inside it):
//   node dist/scripts/tunnels/http-request.js METHOD URL [BODY_JSON] [--token TOKEN]
// prints {"status": N, "body": <parsed JSON or text>} on stdout; exit 0 whenever a reply came.
import { generatePrivateKey } from '../../proto/wireguard/keys.js';
import { channelCall } from '../../test/helpers/control-client.js';

const args = process.argv.slice(2);
const tokenAt = args.indexOf('--token');
const token = tokenAt >= 0 ? args.splice(tokenAt, 2)[1] : undefined;
const [method, url, body] = args as [string, string, string | undefined];

try {
  const u = new URL(url);
  let reply: { status: number; body: unknown };
  if (u.pathname === '/api/v1/server') {
    const res = await fetch(url, { method, signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    let parsed: unknown = text;
    try { parsed = JSON.parse(text); } catch { /* not JSON: keep the text */ }
    reply = { status: res.status, body: parsed };
  } else {
    reply = await channelCall(`${u.protocol}//${u.host}`, generatePrivateKey(), method, u.pathname + u.search, {
      ...(body !== undefined ? { rawBody: body } : {}),
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
} catch (err) {
  const e = err as Error & { cause?: { code?: string } };
  process.stderr.write(`http-request: ${e.cause?.code ?? e.message}\n`);
  process.exitCode = 2;
}
