// A strict JSON reader that remembers where each value sits, so a schema error on a path like
// acls.0.src.1 can be reported as "policy.json:12: ...". JSON.parse knows no lines; this reads
// the same grammar (RFC 8259) and gives the line of every value and object key by its path.

export class JsonSyntaxError extends Error {
  override readonly name = 'JsonSyntaxError';
  constructor(message: string, readonly line: number, readonly column: number) {
    super(message);
  }
}

export interface LocatedJson {
  value: unknown;
  /** Line (1-based) of the value at a path ("" for the root, "acls.0.src.1" below it). */
  lineOf(path: readonly (string | number)[]): number;
}

const key = (path: readonly (string | number)[]): string => path.map(String).join('\u0000');

/** Parses JSON text, keeping the line of every value and member key. Throws JsonSyntaxError. */
export function parseJsonWithLines(text: string): LocatedJson {
  const lines = new Map<string, number>();
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const fail = (what: string): never => {
    const found = i < text.length ? `'${text[i]}'` : 'the end of the text';
    throw new JsonSyntaxError(`${what}, found ${found}`, line, i - lineStart + 1);
  };
  const skipSpace = (): void => {
    while (i < text.length) {
      const c = text[i];
      if (c === '\n') { line++; lineStart = i + 1; } else if (c !== ' ' && c !== '\t' && c !== '\r') return;
      i++;
    }
  };
  const readString = (): string => {
    const start = i;
    i++; // opening quote
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') i++;
      else if (text.charCodeAt(i) < 0x20) fail('control character inside a string');
      i++;
    }
    if (i >= text.length) fail('unterminated string');
    i++;
    try {
      return JSON.parse(text.slice(start, i)) as string;
    } catch {
      i = start;
      return fail('bad escape in string');
    }
  };
  const readValue = (path: (string | number)[]): unknown => {
    skipSpace();
    lines.set(key(path), line);
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: Record<string, unknown> = {};
      skipSpace();
      if (text[i] === '}') { i++; return obj; }
      for (;;) {
        skipSpace();
        if (text[i] !== '"') fail('expected a "quoted" member name');
        const keyLine = line;
        const name = readString();
        skipSpace();
        if (text[i] !== ':') fail(`expected ':' after "${name}"`);
        i++;
        const memberPath = [...path, name];
        obj[name] = readValue(memberPath);
        lines.set(key([...memberPath, '\u0001key']), keyLine);
        skipSpace();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return obj; }
        fail(`expected ',' or '}' after the value of "${name}"`);
      }
    }
    if (c === '[') {
      i++;
      const arr: unknown[] = [];
      skipSpace();
      if (text[i] === ']') { i++; return arr; }
      for (;;) {
        arr.push(readValue([...path, arr.length]));
        skipSpace();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return arr; }
        fail("expected ',' or ']' in a list");
      }
    }
    if (c === '"') return readString();
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (!m) return fail('expected a value');
    i += m[0].length;
    return JSON.parse(m[0]) as unknown;
  };
  const value = readValue([]);
  skipSpace();
  if (i < text.length) fail('unexpected text after the JSON value');
  return {
    value,
    lineOf(path) {
      // The deepest part of the path that exists: a missing member points at its object.
      for (let n = path.length; n >= 0; n--) {
        const at = lines.get(key(path.slice(0, n)));
        if (at !== undefined) return at;
      }
      return 1;
    },
  };
}

/** Line of a member's key (where "owners": sits), falling back to the value's line. */
export function keyLine(doc: LocatedJson, path: readonly (string | number)[], member: string): number {
  return doc.lineOf([...path, member, '\u0001key']);
}
