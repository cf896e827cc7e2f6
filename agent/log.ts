// Structured logs on stderr (pino); PINHOLE_LOG_LEVEL=debug|info|warn|error.
import { pino, type Logger } from 'pino';

export function createLogger(component: string): Logger {
  return pino({ name: component, level: process.env.PINHOLE_LOG_LEVEL ?? 'info', base: { component } }, pino.destination(2));
}
