// Routes: every advertised subnet route and exit node, approve / unapprove. Reloads when nodes change.
import { useEffect, useState } from 'preact/hooks';
import { call } from '../api.js';
import { ErrorLine, useAction } from '../common.js';
import { html } from '../html.js';

export function RoutesPage({ live }) {
  const [routes, setRoutes] = useState([]);
  const [run, error] = useAction();
  const refresh = () => run(async () => setRoutes((await call('GET', 'routes')).routes));
  // The node list is live: a new advertisement or approval shows without a reload.
  const signature = [...live.nodes.values()].map((n) => `${n.id}:${n.advertisedRoutes.join()}:${n.advertisedExitNode}:${n.routes.join()}`).join('|');
  useEffect(() => { refresh(); }, [signature]);
  const change = (r, approve) => run(async () => {
    // An exit node is both default routes: they are approved and withdrawn together.
    const targets = r.exitNode ? routes.filter((x) => x.nodeId === r.nodeId && x.exitNode && x.approved !== approve).map((x) => x.route) : [r.route];
    await call('POST', `nodes/${r.nodeId}/routes${approve ? '' : '/unapprove'}`, { routes: targets });
    await refresh();
  });
  return html`<section>
    <h2>Routes</h2>
    <${ErrorLine} error=${error} />
    ${routes.length === 0 ? html`<p class="empty">No node advertises a route.</p>` : null}
    <table class="routes">
      <thead><tr><th>Node</th><th>Route</th><th>Kind</th><th>State</th><th></th></tr></thead>
      <tbody>${routes.map((r) => html`<tr key=${`${r.nodeId}-${r.route}`} data-route=${r.route}>
        <td>${r.node}</td><td class="mono">${r.route}</td><td>${r.exitNode ? 'exit node' : 'subnet'}</td>
        <td>${r.approved ? 'approved' : 'waiting for approval'}</td>
        <td>${r.approved ? html`<button onClick=${() => change(r, false)}>Unapprove</button>` : html`<button class="primary" onClick=${() => change(r, true)}>Approve</button>`}</td>
      </tr>`)}</tbody>
    </table>
  </section>`;
}
