// Structured logs on stderr (pino); PINHOLE_LOG_LEVEL=debug|info|warn|error.
import { pino, type Logger } from 'pino';

/**
 * pino's error serializer with `type` taken from err.name, not from the constructor's name: the
 * agent runs from a bundle minified without keeping function names (scripts/build-agent-bundle.ts),
 * where a class's own name reads like "Kt". Every error class of ours sets `name`.
 */
export function serializeError(err: unknown): unknown {
  const out = pino.stdSerializers.err(err as Error);
  return err instanceof Error && out && typeof out === 'object' ? { ...out, type: err.name } : out;
}

export function createLogger(component: string): Logger {
  return pino({ name: component, level: process.env.PINHOLE_LOG_LEVEL ?? 'info', base: { component }, serializers: { err: serializeError } }, pino.destination(2));
}
