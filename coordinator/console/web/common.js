// Shared bits of the pages: a one-line error and an action runner that reports its failure.
import { useState } from 'preact/hooks';
import { html } from './html.js';

export function ErrorLine({ error }) {
  return error ? html`<p class="error" role="alert">${error}</p>` : null;
}

/** [run, error]: run(fn) awaits fn and keeps its failure's message for ErrorLine. */
export function useAction() {
  const [error, setError] = useState('');
  const run = async (fn) => {
    setError('');
    try {
      await fn();
    } catch (err) {
      setError(err && err.message ? err.message : String(err));
    }
  };
  return [run, error];
}
