// The name a node asks for when the user gives none: the machine's hostname, made valid
// (letters, digits and "-", at most 63 characters), like Tailscale's default.
import { hostname } from 'node:os';

export function sanitizeHostname(raw: string): string {
  const name = raw.split('.')[0]!
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .slice(0, 63)
    .replace(/^-+|-+$/g, '');
  return name || 'node';
}

export function defaultHostname(): string {
  return sanitizeHostname(hostname());
}
