// Nodes: every node with its addresses, liveness, owner, tags, routes and key expiry; expire, delete.
import { call } from '../api.js';
import { ErrorLine, useAction } from '../common.js';
import { ago, list, when } from '../format.js';
import { html } from '../html.js';

export function NodesPage({ live }) {
  const [run, error] = useAction();
  const nodes = [...live.nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
  const expire = (n) => run(async () => {
    if (!confirm(`Expire the key of ${n.name}? It drops out of every netmap until it signs in again.`)) return;
    await call('POST', `nodes/${n.id}/expire`);
  });
  const remove = (n) => run(async () => {
    if (!confirm(`Delete node ${n.name}?`)) return;
    await call('DELETE', `nodes/${n.id}`);
  });
  return html`<section>
    <h2>Nodes <span class="count">${nodes.length}</span></h2>
    <${ErrorLine} error=${error} />
    <table class="nodes">
      <thead><tr><th>Name</th><th>Addresses</th><th>Online</th><th>Last seen</th><th>Owner / tags</th><th>Routes offered</th><th>Routes approved</th><th>Key expiry</th><th></th></tr></thead>
      <tbody>${nodes.map((n) => html`<tr key=${n.id} data-node-id=${n.id}>
        <td class="name">${n.name}${n.ephemeral ? html` <span class="badge">ephemeral</span>` : null}</td>
        <td class="mono">${n.ipv4}<br />${n.ipv6}</td>
        <td><span class=${n.online ? 'dot on' : 'dot off'}></span>${n.online ? 'online' : 'offline'}</td>
        <td>${n.online ? 'now' : ago(n.lastSeen)}</td>
        <td>${n.user ?? '—'}<br />${list(n.tags)}</td>
        <td class="mono">${list([...n.advertisedRoutes, ...(n.advertisedExitNode ? ['exit node'] : [])])}</td>
        <td class="mono">${list(n.routes)}</td>
        <td>${n.keyExpiresAt ? when(n.keyExpiresAt) : 'never'}</td>
        <td class="actions"><button onClick=${() => expire(n)}>Expire</button> <button class="danger" onClick=${() => remove(n)}>Delete</button></td>
      </tr>`)}</tbody>
    </table>
  </section>`;
}
