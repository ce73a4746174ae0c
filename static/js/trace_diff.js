// The trace diff: two span trees aligned row by row, on a shared timeline.
//
// Like the waterfall (waterfall.js), the page ships no spans. This script fetches the diff's
// layout (tracking/trace_diff.py: each side's span columns, then the aligned rows in pre-order
// with their A and B span indexes, kind and change flags) and renders only the rows near the
// viewport, recycled on scroll. A row's subtree is the `size[r]` rows from r, so collapsing,
// "only changes" and the visible-row list are single passes over flat arrays. The span pair's
// text diff comes from the server when a row is opened. No inline scripts or handlers (CSP);
// untrusted names go in through textContent only.
//
// When the first rows are in the DOM the root gets `data-diff-rows-drawn` (bench/trace_diff.py
// and the e2e tests wait for it) and the performance mark "diff-rows".
"use strict";

(() => {
  const ROW_H = 24; // px; must match .td-row in trace_diff.css
  const OVERSCAN = 8;
  const INDENT = 14; // px per depth level
  const MAX_INDENT_LEVELS = 30;
  const LARGE_DIFF = 20000; // above this many rows, unchanged subtrees below depth 3 start collapsed
  const CRITICAL_NAMES = 12; // names of a critical path listed in the summary before "…"
  const KIND = { SAME: 0, CHANGED: 1, ADDED: 2, REMOVED: 3 };
  const KIND_CLASS = ["kind-same", "kind-changed", "kind-added", "kind-removed"];
  const KIND_MARK = ["", "~", "+", "−"];
  const KIND_LABEL = ["unchanged", "changed", "only in B (added)", "only in A (removed)"];
  // Bit, badge text, title: the contract's flags (tracking/trace_diff.py).
  const FLAGS = [
    [1, "status", "Status differs"],
    [2, "in", "Inputs differ"],
    [4, "out", "Outputs differ"],
    [8, "tokens", "Token usage differs"],
    [16, "cost", "Cost differs"],
    [32, "time", "Duration differs by 25% (and 1 ms) or more"],
    [64, "moved", "Moved among its siblings"],
    [128, "renamed", "Root renamed or retyped: the two traces' only roots are paired anyway"],
  ];
  // Shared with the waterfall (windowed_rows.js, loaded first).
  const { TYPE_ICONS, typeClasses, fmt, duration } = window.Spyglass;

  const root = document.getElementById("trace-diff");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const viewport = $("td-viewport");
  const sizer = $("td-sizer");
  const axis = $("td-axis");
  const grid = $("td-grid");
  const panel = $("diff-panel");
  const summary = $("td-summary");
  const statusLine = $("td-status-line");
  const onlyChanges = $("td-only-changes");
  const changeCount = $("td-change-count");
  const keysDialog = $("td-keys");
  const layoutUrl = root.dataset.layoutUrl;
  const spansUrl = root.dataset.spansUrl;

  let D = null; // the diff layout
  let R = null; // D.rows
  let n = 0; // rows
  let collapsed = new Uint8Array(0);
  let keep = null; // Uint8Array while "only changes" is on: rows shown
  let selected = -1;
  let changeAt = -1; // index into D.changes of the last change moved to
  let critical = new Uint8Array(0); // rows on A's (1) or B's (2) critical path
  let showCritical = false;
  let typeClass = [];
  // The rows near the viewport: rows.visible (row indexes, top to bottom) and rows.rowOf.
  const rows = window.Spyglass.windowedRows({
    viewport, sizer, rowH: ROW_H, overscan: OVERSCAN, heightVar: "--td-rows-height", key: "r",
    tree: () => ({ n, size: R.size, parent: R.parent, collapsed, keep }),
    makeRow, fillRow, afterRefresh: updateStatusLine,
    selected: () => selected, select, setCollapsed,
  });
  const { refresh, redrawAll, ensureVisible, revealAncestors } = rows;

  // --- Formatting -----------------------------------------------------------------------------

  function signedDuration(ns) {
    if (ns === 0) return "±0";
    return (ns > 0 ? "+" : "−") + duration(Math.abs(ns));
  }
  function dollars(v) {
    if (v === null || v === undefined) return "—";
    if (v === 0) return "$0";
    return "$" + (Math.abs(v) < 0.01 ? Number(v).toPrecision(2) : Number(v).toFixed(4));
  }
  function number(v) {
    return v === null || v === undefined ? "—" : fmt.format(v);
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // --- Layout ---------------------------------------------------------------------------------

  async function load() {
    apply(await window.Spyglass.fetchLayout(layoutUrl, "diff-layout"));
  }

  function apply(data) {
    D = data;
    R = D.rows;
    n = R.a.length;
    typeClass = typeClasses(D.type_names);
    collapsed = new Uint8Array(n);
    if (n > LARGE_DIFF) collapseUnchanged(3);
    critical = new Uint8Array(n);
    const onA = new Uint8Array(D.spans.a.ids.length);
    const onB = new Uint8Array(D.spans.b.ids.length);
    for (const i of D.a.critical) onA[i] = 1;
    for (const i of D.b.critical) onB[i] = 1;
    for (let r = 0; r < n; r++) {
      critical[r] = (R.a[r] >= 0 && onA[R.a[r]] ? 1 : 0) | (R.b[r] >= 0 && onB[R.b[r]] ? 2 : 0);
    }
    drawSummary();
    drawAxis();
    refresh();
  }

  function side(r) {
    // The side that names a row: B when the span is there (matched or added), else A.
    return R.b[r] >= 0 ? ["b", R.b[r]] : ["a", R.a[r]];
  }

  function rowName(r) {
    const [s, i] = side(r);
    return D.spans[s].names[i];
  }

  function rowType(r) {
    const [s, i] = side(r);
    return D.spans[s].types[i];
  }

  function spanDur(s, i) {
    return D.spans[s].dur[i];
  }

  // --- Summary --------------------------------------------------------------------------------

  function drawSummary() {
    const S = D.summary;
    const table = el("table", "td-summary-table");
    const head = table.createTHead().insertRow();
    for (const text of ["", "A", "B", "Δ"]) {
      const th = el("th", "", text);
      th.scope = "col";
      head.appendChild(th);
    }
    const body = table.createTBody();
    const lines = [
      ["Latency", "duration_ns", (v) => duration(v), (d) => signedDuration(d), true],
      ["Tokens", "tokens", number, (d) => (d > 0 ? "+" : d < 0 ? "−" : "±") + fmt.format(Math.abs(d)), true],
      ["Cost", "cost", dollars, (d) => (d > 0 ? "+" : d < 0 ? "−" : "±") + dollars(Math.abs(d)), true],
      ["Errors", "errors", number, (d) => (d > 0 ? "+" : d < 0 ? "−" : "±") + Math.abs(d), true],
      ["Spans", "spans", number, (d) => (d > 0 ? "+" : d < 0 ? "−" : "±") + fmt.format(Math.abs(d)), false],
    ];
    for (const [label, key, show, delta, lowerIsBetter] of lines) {
      const a = S.a[key];
      const b = S.b[key];
      const tr = body.insertRow();
      tr.dataset.summary = key;
      const th = el("th", "", label);
      th.scope = "row";
      tr.appendChild(th);
      tr.appendChild(el("td", "num", show(a)));
      tr.appendChild(el("td", "num", show(b)));
      const cell = el("td", "num td-delta");
      if (a !== null && a !== undefined && b !== null && b !== undefined) {
        const d = b - a;
        cell.textContent = delta(d);
        if (d !== 0 && lowerIsBetter) cell.classList.add(d > 0 ? "is-worse" : "is-better");
      } else {
        cell.textContent = "—";
      }
      tr.appendChild(cell);
    }
    const counts = el("p", "td-counts");
    counts.append(
      chip("kind-added", "+", S.added, "added", "spans only in B"),
      chip("kind-removed", "−", S.removed, "removed", "spans only in A"),
      chip("kind-changed", "~", S.changed, "changed", "matched spans that differ"),
      chip("kind-same", "=", S.same, "same", "matched spans with no difference"),
    );
    const paths = el("div", "td-critical");
    paths.append(criticalPath("A", "a"), criticalPath("B", "b"));
    summary.replaceChildren(table, el("div", "td-summary-side"));
    summary.lastChild.append(counts, paths);
    changeCount.textContent = D.changes.length
      ? fmt.format(D.changes.length) + " change" + (D.changes.length === 1 ? "" : "s")
      : "no changes";
  }

  function chip(kind, mark, count, word, title) {
    const node = el("span", "td-chip " + kind);
    node.title = title;
    node.dataset.count = word;
    node.append(el("span", "td-mark", mark), " " + fmt.format(count) + " " + word);
    return node;
  }

  function criticalPath(label, s) {
    const box = el("p", "td-critical-path");
    box.append(el("span", "td-critical-label", "Critical path " + label + ": "));
    const ids = D[s].critical;
    if (!ids.length) {
      box.append(el("span", "muted", "—"));
      return box;
    }
    const names = ids.slice(0, CRITICAL_NAMES).map((i) => D.spans[s].names[i]);
    box.append(el("span", "td-critical-names", names.join(" → ") +
      (ids.length > CRITICAL_NAMES ? " → … (" + fmt.format(ids.length) + " spans)" : "")));
    return box;
  }

  function drawAxis() {
    window.Spyglass.drawAxis(axis, grid, D.total, D.ticks);
  }

  function updateStatusLine() {
    if (!n) {
      statusLine.textContent = "Neither trace has spans yet.";
      return;
    }
    let text = fmt.format(n) + " aligned row" + (n === 1 ? "" : "s") + " · A " +
      fmt.format(D.spans.a.ids.length) + " spans, B " + fmt.format(D.spans.b.ids.length);
    const hidden = n - rows.visible.length;
    if (hidden > 0) {
      text += " · " + fmt.format(hidden) + (keep ? " unchanged or collapsed" : " in collapsed subtrees");
    }
    for (const s of ["a", "b"]) {
      if (D[s].state === "IN_PROGRESS") text += " · " + s.toUpperCase() + " is still in progress";
    }
    statusLine.textContent = text;
  }

  // --- Visible rows ---------------------------------------------------------------------------

  function computeKeep() {
    if (!onlyChanges.checked) {
      keep = null;
      return;
    }
    keep = new Uint8Array(n);
    for (const r of D.changes) keep[r] = 1;
    for (let r = n - 1; r >= 0; r--) {
      const p = R.parent[r];
      if (keep[r] && p >= 0) keep[p] = 1;
    }
  }

  function makeRow() {
    const row = el("div", "td-row");
    row.setAttribute("role", "treeitem");
    const name = el("div", "td-name");
    const guides = el("span", "td-guides");
    const toggle = el("button", "td-toggle");
    toggle.type = "button";
    toggle.tabIndex = -1;
    const mark = el("span", "td-mark");
    const icon = el("span", "td-icon");
    icon.setAttribute("aria-hidden", "true");
    const label = el("span", "td-label");
    const badges = el("span", "td-badges");
    const extra = el("span", "td-extra");
    name.append(guides, toggle, mark, icon, label, badges, extra);
    const track = el("div", "td-track");
    const barA = el("span", "td-bar td-bar-a");
    const barB = el("span", "td-bar td-bar-b");
    track.append(barA, barB);
    const delta = el("div", "td-rowdelta");
    row.append(name, track, delta);
    row._parts = { guides, toggle, mark, icon, label, badges, extra, barA, barB, delta };
    return row;
  }

  function placeBar(bar, s, i) {
    if (i < 0) {
      bar.hidden = true;
      return;
    }
    const total = Math.max(D.total, 1);
    const start = D.spans[s].start[i];
    const d = D.spans[s].dur[i];
    const dur = d < 0 ? D[s].total - start : d;
    bar.hidden = false;
    bar.style.left = (100 * start) / total + "%";
    bar.style.width = (100 * Math.max(dur, 0)) / total + "%";
    bar.classList.toggle("is-error", D.spans[s].status[i] === 2);
    bar.classList.toggle("is-running", d < 0);
    bar.title = s.toUpperCase() + ": " + duration(d);
  }

  function fillRow(row, r, v) {
    const p = row._parts;
    row.style.transform = "translateY(" + v * ROW_H + "px)";
    if (row.dataset.r === String(r) && !row._dirty) {
      setState(row, r);
      return;
    }
    row.dataset.r = String(r);
    const kind = R.kind[r];
    row.dataset.kind = KIND_CLASS[kind].slice(5);
    const depth = R.depth[r];
    p.guides.style.width = Math.min(depth, MAX_INDENT_LEVELS) * INDENT + "px";
    const hasKids = R.size[r] > 1;
    p.toggle.textContent = hasKids ? (collapsed[r] ? "▸" : "▾") : "";
    p.toggle.disabled = !hasKids;
    p.toggle.setAttribute("aria-label", hasKids ? (collapsed[r] ? "Expand" : "Collapse") : "");
    p.mark.textContent = KIND_MARK[kind];
    p.mark.title = KIND_LABEL[kind];
    const typeName = D.type_names[rowType(r)];
    p.icon.textContent = TYPE_ICONS[typeName] || "•";
    p.icon.title = typeName;
    p.label.textContent = rowName(r);
    const flags = R.flags[r];
    const badges = [];
    for (const [bit, text, title] of FLAGS) {
      if (flags & bit) {
        const badge = el("span", "td-badge", text);
        badge.title = title;
        badge.dataset.flag = text;
        badges.push(badge);
      }
    }
    p.badges.replaceChildren(...badges);
    let extra = "";
    if (hasKids && collapsed[r]) extra = "+" + fmt.format(R.size[r] - 1) + " collapsed";
    if (depth > MAX_INDENT_LEVELS) extra = "depth " + depth + (extra ? " · " + extra : "");
    p.extra.textContent = extra;
    row.className = "td-row " + KIND_CLASS[kind] + " " + typeClass[rowType(r)];
    const a = R.a[r];
    const b = R.b[r];
    placeBar(p.barA, "a", a);
    placeBar(p.barB, "b", b);
    const da = a >= 0 ? spanDur("a", a) : -1;
    const db = b >= 0 ? spanDur("b", b) : -1;
    p.delta.className = "td-rowdelta";
    if (a >= 0 && b >= 0 && da >= 0 && db >= 0) {
      p.delta.textContent = signedDuration(db - da);
      if (flags & 32) p.delta.classList.add(db > da ? "is-worse" : "is-better");
      p.delta.title = "A " + duration(da) + " → B " + duration(db);
    } else {
      p.delta.textContent = a >= 0 ? duration(da) : duration(db);
      p.delta.title = a >= 0 ? "only in A" : "only in B";
    }
    const labelText = rowName(r) + ", " + KIND_LABEL[kind];
    row.setAttribute("aria-label", labelText);
    row.setAttribute("aria-level", String(depth + 1));
    if (hasKids) row.setAttribute("aria-expanded", collapsed[r] ? "false" : "true");
    else row.removeAttribute("aria-expanded");
    row._dirty = false;
    setState(row, r);
  }

  function setState(row, r) {
    const c = row.classList;
    c.toggle("is-selected", r === selected);
    c.toggle("is-current-change", changeAt >= 0 && D.changes[changeAt] === r);
    c.toggle("is-critical", showCritical && critical[r] !== 0);
    c.toggle("is-dimmed", showCritical && critical[r] === 0);
    row.setAttribute("aria-selected", r === selected ? "true" : "false");
  }

  // --- Collapse -------------------------------------------------------------------------------

  function setCollapsed(r, value) {
    if (R.size[r] <= 1 || collapsed[r] === value) return;
    collapsed[r] = value;
    refresh();
    ensureVisible(r);
  }

  function collapseUnchanged(depth) {
    // A large diff opens on its changes: subtrees below `depth` are collapsed unless a
    // change is inside them.
    const hasChange = new Uint8Array(n);
    for (const r of D.changes) hasChange[r] = 1;
    for (let r = n - 1; r >= 0; r--) {
      const p = R.parent[r];
      if (hasChange[r] && p >= 0) hasChange[p] = 1;
    }
    for (let r = 0; r < n; r++) {
      collapsed[r] = R.depth[r] >= depth - 1 && R.size[r] > 1 && !hasChange[r] ? 1 : 0;
    }
  }

  // --- Selection, changes, details ------------------------------------------------------------

  function select(r, options = {}) {
    if (r < 0 || r >= n) return;
    selected = r;
    if (rows.rowOf[r] < 0) {
      revealAncestors(r);
      if (keep && !keep[r]) {
        onlyChanges.checked = false;
        computeKeep();
      }
      refresh();
    }
    ensureVisible(r);
    redrawAll();
    const url = new URL(window.location.href);
    url.searchParams.set("row", String(r));
    history.replaceState(null, "", url);
    if (options.open) openDetails(r);
  }

  function goToChange(step) {
    const changes = D.changes;
    if (!changes.length) return;
    // From the selected row: the first change after (or before) it, wrapping around.
    let at;
    if (selected < 0) at = step > 0 ? 0 : changes.length - 1;
    else if (step > 0) {
      at = changes.findIndex((r) => r > selected);
      if (at < 0) at = 0;
    } else {
      at = -1;
      for (let k = changes.length - 1; k >= 0; k--) {
        if (changes[k] < selected) {
          at = k;
          break;
        }
      }
      if (at < 0) at = changes.length - 1;
    }
    changeAt = at;
    select(changes[at], { open: true });
    changeCount.textContent = "change " + fmt.format(at + 1) + " of " + fmt.format(changes.length);
  }

  let detailsRequest = null; // the AbortController of the pair being fetched

  async function openDetails(r) {
    const params = new URLSearchParams({
      sa: R.a[r] >= 0 ? D.spans.a.ids[R.a[r]] : "",
      sb: R.b[r] >= 0 ? D.spans.b.ids[R.b[r]] : "",
    });
    const url = spansUrl + "&" + params.toString();
    // `n` pressed three times quickly asks for three pairs: only the last one may land in the
    // panel, whatever order the answers come back in.
    if (detailsRequest) detailsRequest.abort();
    const request = new AbortController();
    detailsRequest = request;
    panel.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(url, { signal: request.signal });
      const html = await response.text();
      if (request !== detailsRequest) return;
      if (!response.ok) {
        const notice = el("p", "notice notice-error", "The span pair could not be loaded (HTTP " +
          response.status + ").");
        panel.replaceChildren(notice);
        return;
      }
      // The partial is the server's template output: every span value in it is escaped there.
      panel.innerHTML = html;
      if (window.htmx) window.htmx.process(panel);
      panel.dataset.row = String(r);
    } catch (error) {
      if (error.name !== "AbortError") {
        panel.replaceChildren(el("p", "notice notice-error", "The span pair could not be loaded."));
      }
    } finally {
      if (request === detailsRequest) {
        panel.removeAttribute("aria-busy");
        detailsRequest = null;
      }
    }
  }

  function toggleCritical() {
    showCritical = !showCritical;
    root.querySelector('[data-action="critical"]').setAttribute("aria-pressed", String(showCritical));
    if (showCritical) {
      for (let r = 0; r < n; r++) if (critical[r]) revealAncestors(r);
      refresh();
    }
    redrawAll();
  }

  // --- Events ---------------------------------------------------------------------------------

  function bind() {
    viewport.addEventListener("scroll", rows.queueRender, { passive: true });
    window.addEventListener("resize", rows.queueRender);
    viewport.addEventListener("click", (event) => {
      const row = event.target.closest(".td-row");
      if (!row || row.dataset.r === "") return;
      const r = Number(row.dataset.r);
      if (event.target.closest(".td-toggle")) {
        setCollapsed(r, collapsed[r] ? 0 : 1);
        return;
      }
      select(r, { open: true });
      viewport.focus({ preventScroll: true });
    });
    root.addEventListener("click", (event) => {
      const button = event.target.closest("[data-action]");
      if (!button || !D) return;
      const action = button.dataset.action;
      if (action === "next-change") goToChange(1);
      else if (action === "prev-change") goToChange(-1);
      else if (action === "expand-all") {
        collapsed.fill(0);
        refresh();
      } else if (action === "collapse-all") {
        for (let r = 0; r < n; r++) collapsed[r] = R.size[r] > 1 && R.depth[r] >= 0 ? 1 : 0;
        refresh();
      } else if (action === "critical") toggleCritical();
      else if (action === "keys") keysDialog.showModal();
    });
    onlyChanges.addEventListener("change", () => {
      if (!D) return;
      computeKeep();
      if (keep) for (const r of D.changes) revealAncestors(r);
      refresh();
      if (selected >= 0) ensureVisible(selected);
    });
    document.addEventListener("keydown", onKey);
  }

  function onKey(event) {
    if (!window.Spyglass.treeKeyAllowed(event, keysDialog)) return;
    const handlers = {
      n: () => goToChange(1),
      p: () => goToChange(-1),
      N: () => goToChange(-1),
      j: () => rows.move(1), ArrowDown: () => rows.move(1),
      k: () => rows.move(-1), ArrowUp: () => rows.move(-1),
      ArrowLeft: rows.left, ArrowRight: rows.right,
      Enter: () => selected >= 0 && openDetails(selected),
      c: toggleCritical,
      "?": () => (keysDialog.open ? keysDialog.close() : keysDialog.showModal()),
    };
    window.Spyglass.runTreeKey(event, handlers, D);
  }

  // --- Start ----------------------------------------------------------------------------------

  bind();
  load()
    .then(() => {
      performance.mark("diff-rows");
      root.dataset.diffRowsDrawn = "1";
      const raw = new URL(window.location.href).searchParams.get("row");
      const wanted = raw === null ? -1 : Number(raw);
      if (Number.isInteger(wanted) && wanted >= 0 && wanted < n) {
        select(wanted, { open: true });
        rows.center(wanted);
      }
      requestAnimationFrame(() => {
        root.dataset.ready = "1";
      });
    })
    .catch((error) => {
      statusLine.textContent = "The diff could not be loaded (" + error.message + "). Reload to retry.";
      statusLine.classList.add("error-text");
    });
})();
