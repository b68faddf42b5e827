/**
 * The dashboard's two static files, served from the app (`/ui/static/style.css`, `/ui/static/live.js`):
 * no asset comes from the internet, and the Content-Security-Policy allows scripts and styles from the
 * service itself only.
 *
 * @module
 */

/** Plain, legible, responsive styling. */
export const DASHBOARD_STYLE = `
:root { color-scheme: light; --ink: #1b1b1b; --muted: #4a4a4a; --line: #c8c8c8; --accent: #0b57a4;
  --bad: #a4160b; --good: #1d6b2c; --bg: #fff; --band: #f2f4f7; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center; padding: .75rem 1rem;
  background: var(--band); border-bottom: 1px solid var(--line); }
.brand { font-weight: 700; }
nav ul { display: flex; flex-wrap: wrap; gap: 1rem; list-style: none; margin: 0; padding: 0; }
nav a[aria-current="page"] { font-weight: 700; text-decoration-thickness: 3px; }
.who { margin-left: auto; display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem; }
a { color: var(--accent); }
a:focus, button:focus, input:focus, select:focus, textarea:focus { outline: 3px solid #f5a300;
  outline-offset: 2px; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; display: block;
  overflow-x: auto; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; overflow-wrap: anywhere; }
pre { background: var(--band); padding: .75rem; overflow-x: auto; }
form { margin: .5rem 0; }
label { display: block; margin-top: .75rem; font-weight: 600; }
label.choice { display: inline-block; margin-right: 1rem; font-weight: 400; }
fieldset { margin-top: .75rem; border: 1px solid var(--line); }
select, textarea, input[type="text"] { font: inherit; max-width: 100%; width: 32rem; padding: .3rem; }
button, .button { font: inherit; display: inline-block; margin-top: .75rem; padding: .4rem 1rem;
  border: 1px solid var(--accent); border-radius: 4px; background: var(--accent); color: #fff;
  text-decoration: none; cursor: pointer; }
.who button { margin-top: 0; background: #fff; color: var(--accent); }
.error { color: var(--bad); font-weight: 600; border-left: 4px solid var(--bad); padding-left: .5rem; }
.notice { color: var(--good); font-weight: 600; border-left: 4px solid var(--good); padding-left: .5rem; }
.small-cell { background: #fde2e0; color: var(--bad); font-weight: 700; }
progress { width: 12rem; max-width: 100%; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: #fff; padding: .5rem; z-index: 1; }
.plain { list-style: none; margin: 0; padding: 0; }
.run { border-top: 1px solid var(--line); padding-top: .5rem; }
.filters { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end; }
.filters label { margin: 0; }
.filters input, .filters select { width: 14rem; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
@media (max-width: 40rem) { body { font-size: 15px; } .who { margin-left: 0; } }
`;

/**
 * Live updates: every element with `data-run-events="<run id>"` follows that run's Server-Sent Events
 * (`/ui/runs/<id>/events`) and updates the progress bars and texts inside it that name a table
 * (`data-table`), adding a row for a table it has not shown yet (built with DOM calls and `textContent`,
 * never HTML). Without JavaScript the page shows the state at load time.
 */
export const DASHBOARD_SCRIPT = `"use strict";
function cell(tr, child) {
  var td = document.createElement("td");
  if (typeof child === "string") td.textContent = child; else if (child) td.appendChild(child);
  tr.appendChild(td);
  return td;
}
function addRow(box, name) {
  var body = box.querySelector("tbody");
  if (!body) {
    var table = document.createElement("table");
    var head = document.createElement("tr");
    ["Table", "Progress", "Rows and bytes", "Estimate", "SHA-512"].forEach(function (label) {
      var th = document.createElement("th");
      th.scope = "col";
      th.textContent = label;
      head.appendChild(th);
    });
    var thead = document.createElement("thead");
    thead.appendChild(head);
    body = document.createElement("tbody");
    table.appendChild(thead);
    table.appendChild(body);
    box.appendChild(table);
  }
  var tr = document.createElement("tr");
  tr.setAttribute("data-table", name);
  cell(tr, name);
  var progress = cell(tr, null);
  var bar = document.createElement("progress");
  bar.setAttribute("aria-label", name + " progress");
  progress.appendChild(bar);
  progress.appendChild(document.createTextNode(" "));
  var state = document.createElement("span");
  state.setAttribute("data-table-state", "");
  progress.appendChild(state);
  cell(tr, "").setAttribute("data-progress-text", "");
  cell(tr, "");
  cell(tr, "");
  body.appendChild(tr);
  return tr;
}
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-run-events]").forEach(function (box) {
    var id = box.getAttribute("data-run-events");
    var source = new EventSource("/ui/runs/" + encodeURIComponent(id) + "/events");
    source.addEventListener("run", function (event) {
      var run = JSON.parse(event.data);
      var state = box.querySelector("[data-run-state]");
      if (state) state.textContent = run.state;
      (run.tables || []).forEach(function (table) {
        var row = null;
        box.querySelectorAll("[data-table]").forEach(function (r) {
          if (r.getAttribute("data-table") === table.name) row = r;
        });
        if (!row) row = addRow(box, table.name);
        if (!row) return;
        var bar = row.querySelector("progress");
        var expected = table.expected_rows ? table.expected_rows.value : 0;
        if (bar) {
          if (table.state === "done") { bar.max = 1; bar.value = 1; }
          else if (expected > 0) { bar.max = expected; bar.value = Math.min(table.rows, expected); }
        }
        var tableState = row.querySelector("[data-table-state]");
        if (tableState) tableState.textContent = table.state;
        var text = row.querySelector("[data-progress-text]");
        if (text) text.textContent = table.rows + " rows, " + table.bytes + " bytes";
      });
      if (["succeeded", "failed", "cancelled", "interrupted"].indexOf(run.state) >= 0) source.close();
    });
  });
});
`;
