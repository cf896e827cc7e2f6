// The pinhole web console: sign-in, then one page per hash (#nodes, #keys, #routes, #policy,
// #relays, #mesh). Data comes from /admin/api/ (api.js) and live events (live.js).
import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, call, setCsrf, whenSignedOut } from './api.js';
import { html } from './html.js';
import { createLive } from './live.js';
import { NodesPage } from './pages/nodes.js';
import { KeysPage } from './pages/keys.js';
import { RoutesPage } from './pages/routes.js';
import { PolicyPage } from './pages/policy.js';
import { RelaysPage } from './pages/relays.js';
import { MeshPage } from './pages/mesh.js';

const PAGES = [
  ['nodes', 'Nodes', NodesPage],
  ['keys', 'Auth keys', KeysPage],
  ['routes', 'Routes', RoutesPage],
  ['policy', 'Policy', PolicyPage],
  ['relays', 'Relays', RelaysPage],
  ['mesh', 'Live mesh', MeshPage],
];

function pageFromHash() {
  const name = location.hash.replace(/^#/, '');
  return PAGES.some((p) => p[0] === name) ? name : 'nodes';
}

function SignIn({ onSignedIn, message }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(message);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const r = await call('POST', 'session', { token: token.trim() });
      setCsrf(r.csrf);
      onSignedIn();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>pinhole console</h1>
    <form onSubmit=${submit}>
      <label for="token">Admin token</label>
      <input id="token" name="token" type="password" autocomplete="current-password" value=${token} onInput=${(e) => setToken(e.currentTarget.value)} />
      <button type="submit" disabled=${busy || token.trim() === ''}>Sign in</button>
      ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    </form>
  </main>`;
}

function Console({ onSignOut }) {
  const [page, setPage] = useState(pageFromHash());
  const [, setVersion] = useState(0);
  const live = useMemo(() => createLive(() => setVersion((v) => v + 1)), []);
  useEffect(() => {
    const onHash = () => setPage(pageFromHash());
    addEventListener('hashchange', onHash);
    live.start();
    return () => { removeEventListener('hashchange', onHash); live.stop(); };
  }, []);
  const Page = PAGES.find((p) => p[0] === page)[2];
  const signOut = async () => {
    try { await call('DELETE', 'session'); } catch { /* signed out either way */ }
    onSignOut();
  };
  return html`<div class="console">
    <header>
      <span class="brand">pinhole</span>
      <nav>${PAGES.map(([id, title]) => html`<a href=${`#${id}`} class=${id === page ? 'active' : ''} id=${`nav-${id}`}>${title}</a>`)}</nav>
      <button class="signout" onClick=${signOut}>Sign out</button>
    </header>
    <main><${Page} live=${live} /></main>
  </div>`;
}

function App() {
  const [state, setState] = useState({ phase: 'checking', message: '' });
  useEffect(() => {
    whenSignedOut(() => setState({ phase: 'signed-out', message: 'Your session ended; sign in again.' }));
    call('GET', 'session').then((r) => { setCsrf(r.csrf); setState({ phase: 'signed-in', message: '' }); },
      () => setState({ phase: 'signed-out', message: '' }));
  }, []);
  if (state.phase === 'checking') return html`<p class="loading">Loading…</p>`;
  if (state.phase === 'signed-out') return html`<${SignIn} message=${state.message} onSignedIn=${() => setState({ phase: 'signed-in', message: '' })} />`;
  return html`<${Console} onSignOut=${() => { setCsrf(null); setState({ phase: 'signed-out', message: 'Signed out.' }); }} />`;
}

render(html`<${App} />`, document.getElementById('app'));
