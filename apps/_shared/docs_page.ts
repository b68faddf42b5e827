/**
 * A self-contained interactive documentation page for `/docs`. It reads `/openapi.json` and lets the reader
 * send requests with their own key. No CDN: secure data environments are often offline.
 *
 * @module
 */

/** Returns the HTML of the documentation page. */
export function docsPage(title: string): string {
  const safeTitle = title.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${safeTitle}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:980px;padding:1rem 1.5rem;color:#1d2733}
h1{font-size:1.5rem}code,pre,textarea{font:13px ui-monospace,monospace}
details{border:1px solid #c9d3de;border-radius:6px;margin:.6rem 0;padding:.4rem .8rem}
summary{cursor:pointer;font-weight:600}.m{display:inline-block;min-width:3.5rem;color:#fff;border-radius:4px;
padding:0 .4rem;margin-right:.5rem;text-align:center}.get{background:#2f7d4f}.post{background:#2a5d9f}
pre{background:#f3f6f9;padding:.6rem;overflow:auto;max-height:22rem}textarea{width:100%;height:12rem}
label{display:block;margin:.4rem 0}input{width:24rem;font:inherit}button{font:inherit;padding:.2rem .8rem}
</style></head><body>
<h1>${safeTitle}</h1>
<p>Machine-readable contract: <a href="openapi.json">openapi.json</a>. Every reply is an envelope
<code>{"status": "success"|"error", "payload": {...}}</code>; errors carry <code>payload.detail</code>.</p>
<label>x-api-key <input id="key" type="password" autocomplete="off"></label>
<div id="ops">Loading…</div>
<script type="module">
const doc = await (await fetch("openapi.json")).json();
const ops = document.getElementById("ops"); ops.textContent = "";
const resolve = (s) => s && s.$ref ? doc.components.schemas[s.$ref.split("/").pop()] : s;
for (const [path, item] of Object.entries(doc.paths)) {
  for (const [method, op] of Object.entries(item)) {
    const d = document.createElement("details");
    const s = document.createElement("summary");
    s.innerHTML = '<span class="m ' + method + '">' + method.toUpperCase() + "</span>";
    s.append(path + " — " + (op.summary ?? ""));
    d.append(s);
    const schema = resolve(op.requestBody?.content?.["application/json"]?.schema);
    if (schema) {
      const p = document.createElement("pre"); p.textContent = JSON.stringify(schema, null, 2); d.append(p);
    }
    const body = document.createElement("textarea");
    body.value = schema ? "{}" : ""; if (!schema) body.hidden = true; d.append(body);
    const send = document.createElement("button"); send.textContent = "Send"; d.append(send);
    const out = document.createElement("pre"); d.append(out);
    send.onclick = async () => {
      const init = { method: method.toUpperCase(), headers: { "x-api-key": document.getElementById("key").value } };
      if (schema) { init.body = body.value; init.headers["content-type"] = "application/json"; }
      const res = await fetch(path, init);
      out.textContent = res.status + " " + res.statusText + "\\n" + JSON.stringify(await res.json(), null, 2);
    };
    ops.append(d);
  }
}
</script></body></html>`;
}
