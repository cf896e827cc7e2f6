// Auth keys: create with every option (the secret is shown once, with a copy button), list, revoke.
import { useEffect, useState } from 'preact/hooks';
import { call } from '../api.js';
import { ErrorLine, useAction } from '../common.js';
import { list, when } from '../format.js';
import { html } from '../html.js';

const EXPIRY_UNITS = { hours: 3600, days: 86400 };

function CreatedKey({ created, onDone }) {
  const [copied, setCopied] = useState('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.key);
      setCopied('Copied.');
    } catch {
      setCopied('Copy is not allowed here: select the key and copy it.');
    }
  };
  return html`<div class="secret" role="status">
    <p>The new auth key. It is shown only now: copy it.</p>
    <code id="new-auth-key">${created.key}</code>
    <button onClick=${copy}>Copy</button> <button onClick=${onDone}>Done</button>
    <span class="note">${copied}</span>
  </div>`;
}

export function KeysPage() {
  const [keys, setKeys] = useState([]);
  const [form, setForm] = useState({ reusable: false, ephemeral: false, expiry: '', unit: 'days', tags: '', user: '' });
  const [created, setCreated] = useState(null);
  const [run, error] = useAction();
  const refresh = () => run(async () => setKeys((await call('GET', 'authkeys')).authKeys));
  useEffect(() => { refresh(); }, []);
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.type === 'checkbox' ? e.currentTarget.checked : e.currentTarget.value });
  const create = (e) => {
    e.preventDefault();
    run(async () => {
      const body = { reusable: form.reusable, ephemeral: form.ephemeral };
      const tags = form.tags.split(',').map((t) => t.trim()).filter(Boolean);
      if (tags.length) body.tags = tags;
      if (form.user.trim()) body.user = form.user.trim();
      if (form.expiry.trim()) {
        const n = Number(form.expiry);
        if (!Number.isFinite(n) || n <= 0) throw new Error('expiry: a positive number');
        body.expirySeconds = Math.round(n * EXPIRY_UNITS[form.unit]);
      }
      setCreated(await call('POST', 'authkeys', body));
      await refresh();
    });
  };
  const revoke = (k) => run(async () => {
    if (!confirm(`Revoke auth key ${k.prefix}?`)) return;
    await call('DELETE', `authkeys/${k.id}`);
    await refresh();
  });
  return html`<section>
    <h2>Auth keys</h2>
    <form class="create-key" onSubmit=${create}>
      <label><input type="checkbox" id="key-reusable" checked=${form.reusable} onChange=${set('reusable')} /> reusable</label>
      <label><input type="checkbox" id="key-ephemeral" checked=${form.ephemeral} onChange=${set('ephemeral')} /> ephemeral nodes</label>
      <label>expires in <input id="key-expiry" class="short" value=${form.expiry} onInput=${set('expiry')} placeholder="never" />
        <select value=${form.unit} onChange=${set('unit')}><option value="hours">hours</option><option value="days">days</option></select></label>
      <label>tags <input id="key-tags" value=${form.tags} onInput=${set('tags')} placeholder="tag:web, tag:db" /></label>
      <label>owner <input id="key-user" value=${form.user} onInput=${set('user')} placeholder="alice" /></label>
      <button type="submit" id="create-key">Create key</button>
    </form>
    <${ErrorLine} error=${error} />
    ${created ? html`<${CreatedKey} created=${created} onDone=${() => setCreated(null)} />` : null}
    <table class="keys">
      <thead><tr><th>Id</th><th>Prefix</th><th>Reusable</th><th>Ephemeral</th><th>Owner</th><th>Tags</th><th>Created</th><th>Expires</th><th>Used</th><th>State</th><th></th></tr></thead>
      <tbody>${keys.map((k) => html`<tr key=${k.id}>
        <td>${k.id}</td><td class="mono">${k.prefix}</td><td>${k.reusable ? 'yes' : 'no'}</td><td>${k.ephemeral ? 'yes' : 'no'}</td>
        <td>${k.user ?? '—'}</td><td>${list(k.tags)}</td><td>${when(k.createdAt)}</td><td>${k.expiresAt ? when(k.expiresAt) : 'never'}</td>
        <td>${k.usedCount}</td><td>${k.revoked ? 'revoked' : 'valid'}</td>
        <td>${k.revoked ? null : html`<button class="danger" onClick=${() => revoke(k)}>Revoke</button>`}</td>
      </tr>`)}</tbody>
    </table>
  </section>`;
}
