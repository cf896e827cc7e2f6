// Relays: the relay map this coordinator publishes, with the load it can see (home nodes, relayed pairs).
import { useEffect, useState } from 'preact/hooks';
import { call } from '../api.js';
import { ErrorLine, useAction } from '../common.js';
import { list } from '../format.js';
import { html } from '../html.js';

export function RelaysPage({ live }) {
  const [relays, setRelays] = useState([]);
  const [run, error] = useAction();
  const refresh = () => run(async () => setRelays((await call('GET', 'relays')).relays));
  const version = `${live.nodes.size}:${[...live.mesh.values()].map((m) => m.reportedAt).join()}`;
  useEffect(() => { refresh(); }, [version]);
  return html`<section>
    <h2>Relays</h2>
    <${ErrorLine} error=${error} />
    ${relays.length === 0 ? html`<p class="empty">This coordinator publishes no relay (--relay NAME=URL).</p>` : null}
    <table class="relays">
      <thead><tr><th>Name</th><th>URL</th><th>STUN</th><th>Key</th><th>Home of (online / all)</th><th>Pairs relayed now</th></tr></thead>
      <tbody>${relays.map((r) => html`<tr key=${r.name}>
        <td>${r.name}</td><td class="mono">${r.url}</td><td class="mono">${list(r.stun)}</td><td class="mono">${r.key ? `${r.key.slice(0, 12)}…` : '—'}</td>
        <td>${r.onlineHomeNodes} / ${r.homeNodes}</td><td>${r.relayedPairs}</td>
      </tr>`)}</tbody>
    </table>
  </section>`;
}
