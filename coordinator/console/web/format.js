// Small text helpers (everything the console shows is text: Preact escapes it).
export function ago(iso) {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function when(iso) {
  if (!iso) return 'never';
  const t = Date.parse(iso);
  return `${new Date(t).toISOString().replace('T', ' ').slice(0, 16)} UTC${t < Date.now() ? ' (passed)' : ''}`;
}

export function list(items) { return items && items.length ? items.join(', ') : '—'; }
