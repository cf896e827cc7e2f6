// Polls until a condition holds, for lab tests and scripts: `fn` returns the value when ready
// (undefined, null or false: not yet; a throw counts as not yet and its message is reported).
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, ms = 30_000, everyMs = 100): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (err) { last = err; }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
