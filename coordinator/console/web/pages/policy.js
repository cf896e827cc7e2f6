// Policy: the current policy in an editor; every edit is checked by the coordinator (nothing saved)
// and each problem is shown at its line; Save is possible only when the check finds none.
import { useEffect, useRef, useState } from 'preact/hooks';
import { call } from '../api.js';
import { ErrorLine, useAction } from '../common.js';
import { when } from '../format.js';
import { html } from '../html.js';

const CHECK_DELAY_MS = 300;

export function PolicyPage() {
  const [text, setText] = useState('');
  const [current, setCurrent] = useState(null);
  const [issues, setIssues] = useState([]);
  const [checked, setChecked] = useState(false);
  const [saved, setSaved] = useState('');
  const [run, error] = useAction();
  const gutter = useRef(null);
  const timer = useRef(0);
  const seq = useRef(0);
  // Set once the admin types: the policy loading late must not overwrite their text.
  const edited = useRef(false);

  const load = () => run(async () => {
    const r = await call('GET', 'policy');
    setCurrent(r);
    if (edited.current) return;
    const t = r.policy === null ? '' : JSON.stringify(r.policy, null, 2);
    setText(t);
    check(t);
  });
  useEffect(() => { load(); }, []);

  const check = (t) => {
    clearTimeout(timer.current);
    setChecked(false);
    const mine = ++seq.current;
    timer.current = setTimeout(() => run(async () => {
      if (t.trim() === '') { setIssues([]); setChecked(true); return; }
      const r = await call('POST', 'policy/validate', { text: t });
      if (mine !== seq.current) return;
      setIssues(r.issues);
      setChecked(true);
    }), CHECK_DELAY_MS);
  };
  const onInput = (e) => { edited.current = true; setText(e.currentTarget.value); setSaved(''); check(e.currentTarget.value); };
  const onScroll = (e) => { if (gutter.current) gutter.current.scrollTop = e.currentTarget.scrollTop; };
  const save = () => run(async () => {
    const r = text.trim() === '' ? await call('DELETE', 'policy') : await call('PUT', 'policy', JSON.parse(text));
    setCurrent(r);
    setSaved(r.policy === null ? 'Policy removed: every node sees every node.' : 'Saved.');
  });

  const lines = text.split('\n').length;
  const bad = new Map();
  for (const i of issues) if (!bad.has(i.line)) bad.set(i.line, i.message);
  return html`<section>
    <h2>Policy</h2>
    <p class="note">${current === null ? '' : current.policy === null ? 'No policy: every node sees every node.' : `In force since ${when(current.updatedAt)}.`}
      An empty editor saves as “no policy”.</p>
    <div class="editor">
      <div class="gutter" ref=${gutter} aria-hidden="true">${Array.from({ length: lines }, (_, i) => html`<div class=${bad.has(i + 1) ? 'ln bad' : 'ln'} title=${bad.get(i + 1) ?? ''}>${i + 1}</div>`)}</div>
      <textarea id="policy-text" spellcheck="false" value=${text} onInput=${onInput} onScroll=${onScroll}></textarea>
    </div>
    <ul class="issues" id="policy-issues">${issues.map((i) => html`<li data-line=${i.line}>line ${i.line}: ${i.message}</li>`)}</ul>
    <div class="row">
      <button class="primary" id="policy-save" disabled=${!checked || issues.length > 0} onClick=${save}>Save</button>
      <button onClick=${load}>Revert to current</button>
      <span class="note">${checked ? (issues.length ? `${issues.length} problem(s): not saved` : 'No problems found.') : 'Checking…'}</span>
      <span class="note">${saved}</span>
    </div>
    <${ErrorLine} error=${error} />
  </section>`;
}
