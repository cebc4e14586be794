import { createHash } from 'node:crypto';

/**
 * The console's only script and stylesheet, served as their own responses so the pages' CSP can
 * forbid inline code (`script-src 'self'`, `style-src 'self'`). Kept as strings so the Lambda
 * bundle carries them without a copy step.
 *
 * The script: every `[data-live]` section is fetched again every `data-every` ms (with the last
 * ETag, so an unchanged run costs a 304) and swapped in without a reload; the timeline's filters
 * and the open `<details>` survive the swap; polling pauses while the tab is hidden or while a
 * form field inside the section has focus.
 */
export const CONSOLE_JS = `const live = document.querySelector('[data-live]');
function applyFilters() {
  const box = document.querySelector('[data-history-filters]');
  if (!box) return;
  const want = {};
  for (const s of box.querySelectorAll('select[data-filter]')) want[s.dataset.filter] = s.value;
  for (const li of document.querySelectorAll('.timeline > li')) {
    const show = (!want.node || li.dataset.node === want.node) && (!want.type || li.dataset.type === want.type);
    li.hidden = !show;
  }
}
document.addEventListener('change', (e) => {
  if (e.target instanceof HTMLSelectElement && e.target.dataset.filter) applyFilters();
});
if (live) {
  let etag = '';
  const every = Number(live.dataset.every) || 5000;
  async function refresh() {
    if (document.hidden || live.contains(document.activeElement) && document.activeElement.matches('input,select,textarea')) return;
    const res = await fetch(live.dataset.live, { headers: etag ? { 'if-none-match': etag } : {}, credentials: 'same-origin' });
    if (res.status === 304 || !res.ok) return;
    etag = res.headers.get('etag') || '';
    const html = await res.text();
    const filters = {};
    for (const s of live.querySelectorAll('select[data-filter]')) filters[s.dataset.filter] = s.value;
    const open = new Set([...live.querySelectorAll('li[data-seq] > details[open]')].map((d) => d.parentElement.dataset.seq));
    live.innerHTML = html;
    for (const s of live.querySelectorAll('select[data-filter]')) if (filters[s.dataset.filter]) s.value = filters[s.dataset.filter];
    for (const li of live.querySelectorAll('li[data-seq]')) if (open.has(li.dataset.seq)) li.firstElementChild.open = true;
    applyFilters();
    live.dispatchEvent(new CustomEvent('console:updated', { bubbles: true }));
  }
  const tick = () => refresh().catch(() => {}).finally(() => setTimeout(tick, every));
  setTimeout(tick, every);
}
`;

export const CONSOLE_CSS = `:root{--fg:#1f2328;--muted:#57606a;--line:#d0d7de;--bg:#fff;--accent:#0550ae}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,sans-serif;color:var(--fg);background:var(--bg)}
.top{display:flex;justify-content:space-between;align-items:center;padding:.6rem 1rem;background:#24292f;color:#fff}
.top a{color:#fff;font-weight:600;text-decoration:none}.who{color:#d0d7de}
main{padding:1rem;max-width:1200px;margin:0 auto}a{color:var(--accent)}
h1{font-size:1.4rem;margin:.2rem 0 .8rem}h2{font-size:1.1rem;margin:1.2rem 0 .4rem}h3{font-size:1rem}
table{border-collapse:collapse;width:100%;margin:.4rem 0}th,td{border-bottom:1px solid var(--line);padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}.title{color:var(--muted);font-size:.9em}.count{color:var(--muted)}
.filters{display:flex;gap:.8rem;flex-wrap:wrap;align-items:end;margin:.4rem 0}.filters label{display:flex;flex-direction:column;font-size:.85em;color:var(--muted)}
input,select,button{font:inherit;padding:.3rem .5rem;border:1px solid var(--line);border-radius:6px;background:#fff;color:var(--fg)}
button{cursor:pointer;background:#f6f8fa}.btn-approve{background:#1a7f37;color:#fff;border-color:#1a7f37}.btn-reject,.btn-cancel{background:#fff;color:#a40e26;border-color:#a40e26}
.actions{display:flex;gap:.6rem;flex-wrap:wrap;align-items:end;margin:.6rem 0}.action{display:flex;gap:.4rem;align-items:end}.action label{display:flex;flex-direction:column;font-size:.85em}
.badge{display:inline-block;padding:0 .5rem;border-radius:1rem;font-size:.85em;border:1px solid var(--line)}
.s-running,.s-queued{background:#ddf4ff;color:#0a3069}.s-waiting{background:#fff8c5;color:#4d2d00}.s-succeeded{background:#dafbe1;color:#0f5323}
.s-failed,.s-expired{background:#ffebe9;color:#82071e}.s-cancelled{background:#eaeef2;color:#24292f}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}.facts dt{color:var(--muted)}.facts dd{margin:0}
.notice{padding:.5rem .8rem;border:1px solid #d4a72c;background:#fff8c5;border-radius:6px}
.graph{max-width:100%;height:auto}.graph .node rect{fill:#f6f8fa;stroke:#8c959f;stroke-width:1.5}.graph .node text{font-size:13px;fill:#1f2328}
.graph .node.done rect{fill:#dcfce7;stroke:#16a34a}.graph .node.current rect{fill:#fef3c7;stroke:#b45309;stroke-width:3}
.graph .node.failed rect{fill:#fee2e2;stroke:#dc2626;stroke-width:3}.graph .edge{fill:none;stroke:#6e7781;stroke-width:1.4}
.graph .arrowhead{fill:#6e7781}.graph .edge-label{font-size:11px;fill:#57606a}
.timeline{list-style:none;padding:0}.timeline li{border-left:3px solid var(--line);padding:.15rem .6rem;margin:.1rem 0}
.timeline summary{cursor:pointer}.timeline pre{background:#f6f8fa;padding:.5rem;overflow:auto;max-height:24rem;white-space:pre-wrap;word-break:break-word}
code{font-family:ui-monospace,monospace}
`;

const etagOf = (s: string) => `"${createHash('sha256').update(s).digest('base64url').slice(0, 22)}"`;
export const ASSETS: Record<string, { body: string; type: string; etag: string }> = {
  'console.js': { body: CONSOLE_JS, type: 'text/javascript; charset=utf-8', etag: etagOf(CONSOLE_JS) },
  'console.css': { body: CONSOLE_CSS, type: 'text/css; charset=utf-8', etag: etagOf(CONSOLE_CSS) },
};
export { etagOf };
