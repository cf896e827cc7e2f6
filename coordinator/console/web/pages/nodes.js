// Nodes: every node with its addresses, liveness, OS/version, owner, tags, routes and key expiry;
// rename (inline, checked as the coordinator checks it), expire, delete.
import { call } from '../api.js';
import { ErrorLine, useAction } from '../common.js';
import { useState } from 'preact/hooks';
import { ago, list, when } from '../format.js';
import { html } from '../html.js';

/** The coordinator's rule for a name (proto/control/schemas.ts Hostname). */
const NAME_RULE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i;

function nameProblem(name) {
  if (name.length === 0) return 'a name is required';
  if (name.length > 63) return 'a name has at most 63 characters';
  return NAME_RULE.test(name) ? '' : 'a name of letters, digits and "-" (not at either end)';
}

export function NodesPage({ live }) {
  const [run, error] = useAction();
  const [editing, setEditing] = useState(null);
  const [draft, setDraft] = useState('');
  const startRename = (n) => { setEditing(n.id); setDraft(n.name); };
  const problem = editing === null ? '' : nameProblem(draft.trim());
  const rename = (n) => run(async () => {
    if (problem) return;
    await call('POST', `nodes/${n.id}/rename`, { name: draft.trim() });
    setEditing(null);
  });
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
      <thead><tr><th>Name</th><th>Addresses</th><th>Online</th><th>Last seen</th><th>OS / version</th><th>Owner / tags</th><th>Routes offered</th><th>Routes approved</th><th>Key expiry</th><th></th></tr></thead>
      <tbody>${nodes.map((n) => html`<tr key=${n.id} data-node-id=${n.id}>
        <td class="name">${editing === n.id
          ? html`<form class="rename" onSubmit=${(e) => { e.preventDefault(); rename(n); }}>
              <input id="rename-input" aria-label=${`New name for ${n.name}`} value=${draft} maxlength="63" autocomplete="off"
                onInput=${(e) => setDraft(e.currentTarget.value)} />
              <button type="submit" class="primary" disabled=${Boolean(problem)}>Save</button>
              <button type="button" onClick=${() => setEditing(null)}>Cancel</button>
              ${problem ? html`<span class="field-error">${problem}</span>` : null}
            </form>`
          : html`${n.name}${n.ephemeral ? html` <span class="badge">ephemeral</span>` : null}`}</td>
        <td class="mono">${n.ipv4}<br />${n.ipv6}</td>
        <td><span class=${n.online ? 'dot on' : 'dot off'}></span>${n.online ? 'online' : 'offline'}</td>
        <td>${n.online ? 'now' : ago(n.lastSeen)}</td>
        <td class="os">${n.os ?? '—'}<br />${n.version ?? ''}</td>
        <td>${n.user ?? '—'}<br />${list(n.tags)}</td>
        <td class="mono">${list([...n.advertisedRoutes, ...(n.advertisedExitNode ? ['exit node'] : [])])}</td>
        <td class="mono">${list(n.routes)}</td>
        <td>${n.keyExpiresAt ? when(n.keyExpiresAt) : 'never'}</td>
        <td class="actions"><button onClick=${() => startRename(n)}>Rename</button> <button onClick=${() => expire(n)}>Expire</button> <button class="danger" onClick=${() => remove(n)}>Delete</button></td>
      </tr>`)}</tbody>
    </table>
  </section>`;
}
