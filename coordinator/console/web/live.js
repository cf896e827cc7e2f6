// The live state of the mesh: every node (GET nodes) and every node's path report (GET mesh),
// kept current by server-sent events; a reconnect reloads both (events may have been missed).
import { call } from './api.js';

export function createLive(onChange) {
  const nodes = new Map();
  const mesh = new Map();
  let source = null;
  let pending = false;
  const changed = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; onChange(); });
  };
  const reload = async () => {
    const [n, m] = await Promise.all([call('GET', 'nodes'), call('GET', 'mesh')]);
    nodes.clear();
    for (const x of n.nodes) nodes.set(x.id, x);
    mesh.clear();
    for (const p of m.nodes) mesh.set(p.nodeId, p);
    changed();
  };
  return {
    nodes, mesh, reload,
    start() {
      source = new EventSource('/admin/api/events');
      source.addEventListener('open', () => { reload().catch(() => {}); });
      source.addEventListener('node', (e) => { const n = JSON.parse(e.data); nodes.set(n.id, n); changed(); });
      source.addEventListener('node-removed', (e) => { const { id } = JSON.parse(e.data); nodes.delete(id); mesh.delete(id); changed(); });
      source.addEventListener('paths', (e) => {
        const { nodeId, paths } = JSON.parse(e.data);
        if (paths) mesh.set(nodeId, paths); else mesh.delete(nodeId);
        changed();
      });
    },
    stop() { source?.close(); source = null; },
  };
}
