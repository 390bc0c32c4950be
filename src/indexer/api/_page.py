"""``GET /graphql``: a query page that works offline (no CDN, no external assets).

A deliberately small page of our own rather than a bundled GraphiQL: it
needs nothing beyond this string, so it works on an air-gapped machine and
adds no JavaScript dependency to ship and audit.  It edits a query and its
variables, runs them (Ctrl+Enter), shows the answer, and lists the schema's
root fields with their arguments and types (from an introspection query),
a click inserting an example query.
"""

from __future__ import annotations

__all__ = ["GRAPHQL_PAGE"]

GRAPHQL_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>indexer GraphQL</title>
<style>
body{margin:0;font:14px/1.4 system-ui,sans-serif;display:flex;height:100vh;color:#1d2433}
aside{width:300px;overflow:auto;border-right:1px solid #ddd;padding:8px 12px;background:#f7f8fa}
main{flex:1;display:flex;flex-direction:column;min-width:0}
.row{display:flex;flex:1;min-height:0}
textarea,pre{font:13px/1.45 ui-monospace,monospace;margin:0;border:0;padding:10px;box-sizing:border-box}
textarea{resize:none;outline:none;width:100%}
#query{flex:3}#vars{flex:1;border-top:1px solid #ddd}
.col{display:flex;flex-direction:column;flex:1;min-width:0}
#out{flex:1;overflow:auto;background:#fbfbfd;border-left:1px solid #ddd}
header{display:flex;gap:10px;align-items:center;padding:6px 10px;border-bottom:1px solid #ddd}
button{padding:4px 14px;cursor:pointer}
.f{cursor:pointer;padding:3px 0}.f:hover{text-decoration:underline}
.t{color:#8a5a00}.a{color:#666;font-size:12px}
</style></head><body>
<aside><h3>Queries</h3><div id="schema">loading the schema…</div></aside>
<main><header><b>indexer</b> GraphQL
<button id="run" title="Ctrl+Enter">Run</button><span id="took" class="a"></span></header>
<div class="row"><div class="col">
<textarea id="query" spellcheck="false">{ _meta { chains { chainId block } } }</textarea>
<textarea id="vars" spellcheck="false" placeholder="variables (JSON)"></textarea>
</div><pre id="out"></pre></div></main>
<script>
const $ = (id) => document.getElementById(id);
async function post(query, variables) {
  const r = await fetch(location.pathname, {method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({query, variables})});
  return r.json();
}
async function run() {
  let vars = null;
  try { vars = $("vars").value.trim() ? JSON.parse($("vars").value) : null; }
  catch (e) { $("out").textContent = "variables: " + e; return; }
  const t0 = performance.now();
  try {
    const res = await post($("query").value, vars);
    $("out").textContent = JSON.stringify(res, null, 2);
  } catch (e) { $("out").textContent = String(e); }
  $("took").textContent = Math.round(performance.now() - t0) + " ms";
}
function typeName(t) {
  if (t.kind === "NON_NULL") return typeName(t.ofType) + "!";
  if (t.kind === "LIST") return "[" + typeName(t.ofType) + "]";
  return t.name;
}
function leaf(t) { while (t.ofType) t = t.ofType; return t; }
async function loadSchema() {
  const q = `{ __schema { queryType { fields { name args { name type { ...T } }
    type { ...T } } } types { name kind fields { name type { ...T } } } } }
    fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }`;
  const res = await post(q, null);
  if (!res.data) { $("schema").textContent = JSON.stringify(res.errors); return; }
  const types = Object.fromEntries(res.data.__schema.types.map((t) => [t.name, t]));
  const box = $("schema"); box.textContent = "";
  for (const f of res.data.__schema.queryType.fields) {
    const d = document.createElement("div"); d.className = "f";
    const args = f.args.map((a) => a.name + ": " + typeName(a.type)).join(", ");
    d.innerHTML = "";
    d.append(f.name);
    const s = document.createElement("span"); s.className = "t";
    s.textContent = ": " + typeName(f.type); d.append(s);
    const a = document.createElement("div"); a.className = "a"; a.textContent = args; d.append(a);
    d.onclick = () => {
      const t = types[leaf(f.type).name];
      const scalars = (ty) => (ty.fields || []).filter((x) => !leaf(x.type).fields &&
        ["SCALAR", "ENUM"].includes(leaf(x.type).kind)).map((x) => x.name).join(" ");
      let body;
      if (t.fields && t.fields.some((x) => x.name === "items")) {
        const item = types[leaf(t.fields.find((x) => x.name === "items").type).name];
        body = `{ ${f.name}(limit: 10) { totalCount items { ${scalars(item)} } pageInfo { hasNextPage endCursor } } }`;
      } else if (f.name === "_meta") { body = "{ _meta { chains { chainId block } } }"; }
      else { body = `{ ${f.name}(id: "") { ${scalars(t)} } }`; }
      $("query").value = body;
    };
    box.append(d);
  }
}
$("run").onclick = run;
document.addEventListener("keydown", (e) => { if (e.ctrlKey && e.key === "Enter") run(); });
loadSchema();
</script></body></html>
"""
