// The live mesh: a node per node, an edge per pair that talked recently, coloured by its path
// (direct, relayed and through which relay) with its latency. Clicking an edge shows both sides'
// reports (NAT type, why not direct, what was tried). Node names are drawn by Cytoscape on a
// canvas, and listed as text: never as HTML.
import cytoscape from 'cytoscape';
import { useEffect, useRef, useState } from 'preact/hooks';
import { html } from '../html.js';
import { meshPairs, pairLabel, PATH_COLOURS } from './mesh-model.js';

/** Above this many nodes the force layout is too slow for a first paint: a circle instead. */
const FORCE_LAYOUT_MAX_NODES = 60;
const LISTED_PAIRS = 200;

// Labels smaller than 7 px on screen are not drawn: a thousand-node graph zoomed out paints fast.
const STYLE = [
  { selector: 'node', style: { 'background-color': '#4a6fa5', label: 'data(label)', 'font-size': 11, color: '#1f2933', 'text-valign': 'bottom', 'text-margin-y': 4, width: 18, height: 18, 'min-zoomed-font-size': 7 } },
  { selector: 'node[?offline]', style: { 'background-color': '#c5ccd3' } },
  { selector: 'edge', style: { width: 3, 'line-color': 'data(colour)', label: 'data(label)', 'font-size': 10, 'text-background-color': '#ffffff', 'text-background-opacity': 0.8, 'text-background-padding': 2, 'curve-style': 'straight', 'min-zoomed-font-size': 7 } },
  { selector: 'edge[kind = "none"]', style: { 'line-style': 'dashed' } },
  { selector: 'edge:selected', style: { width: 6 } },
];

function layoutFor(n) {
  return n <= FORCE_LAYOUT_MAX_NODES ? { name: 'cose', animate: false, randomize: false, nodeRepulsion: () => 40000, idealEdgeLength: () => 120, componentSpacing: 160 } : { name: 'circle', animate: false };
}

function Side({ name, side }) {
  if (!side) return html`<div class="side"><h4>${name}</h4><p class="note">No report from this side.</p></div>`;
  return html`<div class="side"><h4>${name}</h4><dl>
    <dt>NAT type</dt><dd>${side.natType ?? 'not known'}</dd>
    <dt>Path</dt><dd>${side.path}${side.path === 'relay' ? ` via ${side.relay ?? '?'}` : ''}</dd>
    <dt>Endpoint</dt><dd class="mono">${side.endpoint ?? '—'}</dd>
    <dt>Latency</dt><dd>${side.latencyMs === null ? '—' : `${side.latencyMs} ms`}</dd>
    <dt>Why not direct</dt><dd class="why">${side.whyNotDirect ?? '—'}</dd>
    <dt>Tried</dt><dd>${side.tried.candidates} candidate(s), ${side.tried.pingsSent} ping(s) sent, ${side.tried.pongsReceived} pong(s) received</dd>
    <dt>Idle</dt><dd>${Math.round(side.idleSeconds)} s</dd>
  </dl></div>`;
}

export function MeshPage({ live }) {
  const box = useRef(null);
  const cyRef = useRef(null);
  const [selected, setSelected] = useState(null);
  const pairs = meshPairs(live);
  const nameOf = (id) => live.nodes.get(id)?.name ?? `node ${id}`;

  useEffect(() => {
    const cy = cytoscape({ container: box.current, style: STYLE, minZoom: 0.05, maxZoom: 1.5, textureOnViewport: true, hideEdgesOnViewport: true });
    cy.on('tap', 'edge', (e) => setSelected(e.target.id().slice(1)));
    cy.on('tap', (e) => { if (e.target === cy) setSelected(null); });
    cyRef.current = cy;
    return () => { cy.destroy(); cyRef.current = null; };
  }, []);

  useEffect(() => {
    const cy = cyRef.current;
    if (!cy) return;
    const wantNodes = new Map();
    for (const n of live.nodes.values()) wantNodes.set(`n${n.id}`, { id: `n${n.id}`, label: n.name, offline: !n.online });
    const wantEdges = new Map();
    for (const p of pairs) wantEdges.set(`e${p.key}`, { id: `e${p.key}`, source: `n${p.a}`, target: `n${p.b}`, kind: p.kind, colour: PATH_COLOURS[p.kind], label: pairLabel(p) });
    let added = 0;
    cy.batch(() => {
      cy.elements().forEach((el) => { if (!(el.isNode() ? wantNodes : wantEdges).has(el.id())) el.remove(); });
      const put = (group, want) => {
        const fresh = [];
        for (const [id, data] of want) {
          const el = cy.getElementById(id);
          if (el.nonempty()) el.data(data); else fresh.push({ group, data });
        }
        if (fresh.length) cy.add(fresh);
        return fresh.length;
      };
      added = put('nodes', wantNodes);
      put('edges', wantEdges);
    });
    if (added > 0) {
      cy.layout(layoutFor(cy.nodes().length)).run();
      cy.fit(undefined, 30);
    }
    if (cy.nodes().length > 0 && !document.body.dataset.graphPainted) {
      cy.one('render', () => {
        performance.mark('graph-painted');
        document.body.dataset.graphPainted = String(cy.edges().length);
      });
    }
  });

  const pair = selected === null ? null : pairs.find((p) => p.key === selected) ?? null;
  const counts = { direct: 0, relay: 0, none: 0 };
  for (const p of pairs) counts[p.kind]++;
  return html`<section class="mesh">
    <h2>Live mesh <span class="count">${live.nodes.size} nodes · ${pairs.length} pairs</span></h2>
    <p class="legend">
      <span class="swatch direct"></span> direct ${counts.direct}
      <span class="swatch relay"></span> relayed ${counts.relay}
      <span class="swatch none"></span> no path ${counts.none}
      <span class="note">Click an edge for both sides' view.</span>
    </p>
    <div class="graph" ref=${box} id="mesh-graph"></div>
    ${pair ? html`<div class="pair-detail" id="pair-detail">
      <h3>${nameOf(pair.a)} ↔ ${nameOf(pair.b)}: ${pairLabel(pair)}</h3>
      <div class="sides"><${Side} name=${nameOf(pair.a)} side=${pair.sides.get(pair.a)} /><${Side} name=${nameOf(pair.b)} side=${pair.sides.get(pair.b)} /></div>
    </div>` : null}
    <table class="pairs" id="mesh-pairs">
      <thead><tr><th>Pair</th><th>Path</th><th>Latency</th><th>Why not direct</th></tr></thead>
      <tbody>${pairs.slice(0, LISTED_PAIRS).map((p) => html`<tr key=${p.key} data-pair=${`${nameOf(p.a)}|${nameOf(p.b)}`} data-kind=${p.kind} onClick=${() => setSelected(p.key)}>
        <td>${nameOf(p.a)} ↔ ${nameOf(p.b)}</td>
        <td>${p.kind === 'relay' ? `relayed via ${p.relay ?? '?'}` : p.kind}</td>
        <td>${p.latencyMs === null ? '—' : `${p.latencyMs} ms`}</td>
        <td class="why">${[...p.sides.values()].map((s) => s.whyNotDirect).filter(Boolean).join(' / ') || '—'}</td>
      </tr>`)}</tbody>
    </table>
    ${pairs.length > LISTED_PAIRS ? html`<p class="note">and ${pairs.length - LISTED_PAIRS} more pairs (in the graph).</p>` : null}
  </section>`;
}
