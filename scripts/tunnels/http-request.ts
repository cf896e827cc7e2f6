// One HTTP request from inside a lab namespace (the test process itself lives outside the lab):
//   node dist/scripts/tunnels/http-request.js METHOD URL [BODY_JSON] [--token TOKEN]
// prints {"status": N, "body": <parsed JSON or text>} on stdout; exit 0 whenever a reply came.
const args = process.argv.slice(2);
const tokenAt = args.indexOf('--token');
const token = tokenAt >= 0 ? args.splice(tokenAt, 2)[1] : undefined;
const [method, url, body] = args as [string, string, string | undefined];

try {
  const res = await fetch(url, {
    method,
    headers: {
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try { parsed = JSON.parse(text); } catch { /* not JSON: keep the text */ }
  process.stdout.write(`${JSON.stringify({ status: res.status, body: parsed })}\n`);
} catch (err) {
  const e = err as Error & { cause?: { code?: string } };
  process.stderr.write(`http-request: ${e.cause?.code ?? e.message}\n`);
  process.exitCode = 2;
}
