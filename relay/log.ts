// Structured logs on stderr (pino); PINHOLE_LOG_LEVEL=debug|info|warn|error|silent.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(component: string): Logger {
  return pino({ name: component, level: process.env.PINHOLE_LOG_LEVEL ?? 'info', base: { component } }, pino.destination(2));
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
