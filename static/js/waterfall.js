// The trace waterfall: a span tree beside a timeline, for traces of any size.
//
// The page ships no spans. This script fetches the layout (columns of ids, names, types,
// offsets, durations and tree shape in display order; see tracking/waterfall.py) and renders
// only the rows near the viewport: fixed-height rows, absolutely positioned over a sizer as
// tall as all visible rows, recycled on scroll. Because the spans are in pre-order, a node's
// subtree is the `size[i]` entries from i, so collapsing, filtering and the visible-row list
// are single passes over flat arrays. A span's contents come from the server when it is opened
// (htmx). No inline scripts or handlers: everything is bound here (the CSP forbids the rest).
//
// Performance marks (read by bench/waterfall.py): "wf-layout" when the layout JSON is parsed,
// "wf-rows" when the first rows are in the DOM, "wf-interactive" once handlers are bound and
// the first frame with rows has been laid out.
"use strict";

(() => {
  const ROW_H = 24; // px; must match .wf-row in waterfall.css
  const OVERSCAN = 8; // rows rendered above and below the viewport (each costs layout on scroll)
  const INDENT = 14; // px per depth level
  const MAX_INDENT_LEVELS = 30; // deeper levels are drawn at this indent, with the depth shown
  const LARGE_TRACE = 20000; // above this, subtrees below depth 3 start collapsed
  const POLL_MS = 3000;
  // Shared with the trace diff (windowed_rows.js, loaded first).
  const { TYPE_ICONS, typeClasses, fmt, duration } = window.Spyglass;

  const root = document.getElementById("waterfall");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const viewport = $("wf-viewport");
  const sizer = $("wf-sizer");
  const axis = $("wf-axis");
  const grid = $("wf-grid");
  const panel = $("span-panel");
  const findInput = $("wf-find");
  const findCount = $("wf-find-count");
  const typeSelect = $("wf-type");
  const statusSelect = $("wf-status");
  const onlyMatches = $("wf-only-matches");
  const depthSelect = $("wf-depth");
  const statusLine = $("wf-status-line");
  const keysDialog = $("wf-keys");
  const layoutUrl = root.dataset.layoutUrl;
  const spanUrl = root.dataset.spanUrl;

  let L = null; // the layout
  let n = 0;
  let collapsed = new Uint8Array(0);
  let keep = null; // Uint8Array when a type/status/match filter is on: spans shown
  let selected = -1;
  let findTimer = 0;
  let matches = [];
  let matchAt = -1;
  let isMatch = new Uint8Array(0);
  let critical = new Uint8Array(0);
  let showCritical = false;
  let lowerNames = null;
  let typeClass = [];
  // The rows near the viewport; rows.visible: display indexes of the rows, top to bottom;
  // rows.rowOf: display index -> row number in rows.visible, -1 if hidden.
  const rows = window.Spyglass.windowedRows({
    viewport, sizer, rowH: ROW_H, overscan: OVERSCAN, heightVar: "--wf-rows-height", key: "i",
    tree: () => ({ n, size: L.size, parent: L.parent, collapsed, keep }),
    makeRow, fillRow, afterRefresh: updateStatusLine,
    selected: () => selected, select, setCollapsed,
  });
  const { refresh, queueRender, redrawAll, ensureVisible, revealAncestors } = rows;

  // --- Layout ---------------------------------------------------------------------------------

  async function load() {
    apply(await window.Spyglass.fetchLayout(layoutUrl, "wf-layout"), null);
  }

  function apply(data, previous) {
    L = data;
    n = L.ids.length;
    lowerNames = null;
    typeClass = typeClasses(L.type_names);
    critical = new Uint8Array(n);
    for (const i of L.critical) critical[i] = 1;
    collapsed = new Uint8Array(n);
    if (previous) {
      // Keep what the reader collapsed and selected across a refresh of a running trace.
      const index = new Map();
      L.ids.forEach((id, i) => index.set(id, i));
      for (const id of previous.collapsedIds) if (index.has(id)) collapsed[index.get(id)] = 1;
      selected = index.has(previous.selectedId) ? index.get(previous.selectedId) : -1;
    } else if (n > LARGE_TRACE) {
      collapseToDepth(3);
    }
    fillTypeSelect();
    drawAxis();
    computeFilter();
    computeMatches(false);
    refresh();
    updateStatusLine();
  }

  function snapshot() {
    const collapsedIds = [];
    for (let i = 0; i < n; i++) if (collapsed[i]) collapsedIds.push(L.ids[i]);
    return { collapsedIds, selectedId: selected >= 0 ? L.ids[selected] : null };
  }

  function fillTypeSelect() {
    const current = typeSelect.value;
    typeSelect.replaceChildren(new Option("All", ""));
    L.type_names.forEach((t, i) => typeSelect.add(new Option(t, String(i))));
    typeSelect.value = current;
  }

  function drawAxis() {
    window.Spyglass.drawAxis(axis, grid, L.total, L.ticks);
  }

  function updateStatusLine() {
    if (!n) {
      statusLine.textContent = "No spans received for this trace yet" +
        (L.state === "IN_PROGRESS" ? "; they will appear here as they arrive." : ".");
      return;
    }
    const hidden = n - rows.visible.length;
    let text = fmt.format(n) + " span" + (n === 1 ? "" : "s") + " · " + duration(L.total);
    if (hidden > 0) {
      text += " · " + fmt.format(hidden) + " in collapsed or filtered subtrees (expand to see them)";
    }
    if (L.orphans.length) {
      text += " · " + fmt.format(L.orphans.length) + " without their parent, shown as roots";
    }
    if (L.span_count > n) {
      text += " · " + fmt.format(L.span_count - n) + " more counted than received";
    }
    if (L.state === "IN_PROGRESS") text += " · in progress, updating";
    statusLine.textContent = text;
  }

  // --- Visible rows ---------------------------------------------------------------------------

  function makeRow() {
    const row = document.createElement("div");
    row.className = "wf-row";
    row.setAttribute("role", "treeitem");
    const name = document.createElement("div");
    name.className = "wf-name";
    const guides = document.createElement("span");
    guides.className = "wf-guides";
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "wf-toggle";
    toggle.tabIndex = -1;
    const icon = document.createElement("span");
    icon.className = "wf-icon";
    icon.setAttribute("aria-hidden", "true");
    const label = document.createElement("span");
    label.className = "wf-label";
    const extra = document.createElement("span");
    extra.className = "wf-extra";
    name.append(guides, toggle, icon, label, extra);
    const track = document.createElement("div");
    track.className = "wf-track";
    const bar = document.createElement("span");
    bar.className = "wf-bar";
    const dur = document.createElement("span");
    dur.className = "wf-dur";
    track.append(bar, dur);
    row.append(name, track);
    row._parts = { guides, toggle, icon, label, extra, bar, dur };
    return row;
  }

  function fillRow(row, i, r) {
    const p = row._parts;
    row.style.transform = "translateY(" + r * ROW_H + "px)";
    if (row.dataset.i === String(i) && !row._dirty) {
      setFlags(row, i);
      return;
    }
    row.dataset.i = String(i);
    row.id = "wf-span-" + L.ids[i];
    const depth = L.depth[i];
    const shownDepth = Math.min(depth, MAX_INDENT_LEVELS);
    p.guides.style.width = shownDepth * INDENT + "px";
    const hasKids = L.size[i] > 1;
    p.toggle.textContent = hasKids ? (collapsed[i] ? "▸" : "▾") : "";
    p.toggle.disabled = !hasKids;
    p.toggle.setAttribute("aria-label", hasKids ? (collapsed[i] ? "Expand" : "Collapse") : "");
    const typeName = L.type_names[L.types[i]];
    p.icon.textContent = TYPE_ICONS[typeName] || "•";
    p.icon.title = typeName;
    setLabel(p.label, L.names[i]);
    let extra = "";
    if (hasKids && collapsed[i]) extra = "+" + fmt.format(L.size[i] - 1) + " collapsed";
    if (depth > MAX_INDENT_LEVELS) extra = "depth " + depth + (extra ? " · " + extra : "");
    p.extra.textContent = extra;
    row.className = "wf-row " + typeClass[L.types[i]];
    const total = Math.max(L.total, 1);
    const start = L.start[i];
    const dur = L.dur[i] < 0 ? L.total - start : L.dur[i];
    const left = (100 * start) / total;
    const width = (100 * dur) / total;
    p.bar.style.left = left + "%";
    p.bar.style.width = width + "%";
    p.dur.textContent = duration(L.dur[i]);
    // The label sits after the bar, or before it when the bar reaches the right edge.
    if (left + width > 78) {
      p.dur.style.left = "";
      p.dur.style.right = 100 - left + "%";
    } else {
      p.dur.style.right = "";
      p.dur.style.left = left + width + "%";
    }
    row.setAttribute("aria-level", String(depth + 1));
    if (hasKids) row.setAttribute("aria-expanded", collapsed[i] ? "false" : "true");
    else row.removeAttribute("aria-expanded");
    row._dirty = false;
    setFlags(row, i);
  }

  function setLabel(label, name) {
    const q = findInput.value.trim().toLowerCase();
    const at = q ? name.toLowerCase().indexOf(q) : -1;
    if (at < 0) {
      label.textContent = name;
      return;
    }
    // Built from text nodes: span names are untrusted and never go through innerHTML.
    const mark = document.createElement("mark");
    mark.textContent = name.slice(at, at + q.length);
    label.replaceChildren(name.slice(0, at), mark, name.slice(at + q.length));
  }

  function setFlags(row, i) {
    const c = row.classList;
    c.toggle("is-error", L.status[i] === 2);
    c.toggle("is-running", L.dur[i] < 0);
    c.toggle("is-selected", i === selected);
    c.toggle("is-match", isMatch[i] === 1);
    c.toggle("is-current-match", matchAt >= 0 && matches[matchAt] === i);
    c.toggle("is-critical", showCritical && critical[i] === 1);
    c.toggle("is-dimmed", showCritical && critical[i] !== 1);
    row.setAttribute("aria-selected", i === selected ? "true" : "false");
  }

  // --- Collapse -------------------------------------------------------------------------------

  function setCollapsed(i, value) {
    if (L.size[i] <= 1 || collapsed[i] === value) return;
    collapsed[i] = value;
    const keepTop = rows.rowOf[i];
    refresh();
    if (keepTop >= 0) ensureVisible(i);
  }

  function collapseToDepth(depth) {
    for (let i = 0; i < n; i++) collapsed[i] = L.depth[i] >= depth - 1 && L.size[i] > 1 ? 1 : 0;
  }

  // --- Filters and find -----------------------------------------------------------------------

  function names() {
    if (!lowerNames) lowerNames = L.names.map((s) => s.toLowerCase());
    return lowerNames;
  }

  function computeMatches(move) {
    const q = findInput.value.trim().toLowerCase();
    isMatch = new Uint8Array(n);
    matches = [];
    if (q) {
      const lower = names();
      for (let i = 0; i < n; i++) {
        if (lower[i].includes(q) || L.ids[i].startsWith(q)) {
          isMatch[i] = 1;
          matches.push(i);
        }
      }
    }
    matchAt = matches.length ? 0 : -1;
    if (move && matchAt >= 0) goToMatch(0);
    showMatchCount();
  }

  function showMatchCount() {
    if (!findInput.value.trim()) findCount.textContent = "";
    else if (!matches.length) findCount.textContent = "no match";
    else findCount.textContent = fmt.format(matchAt + 1) + " of " + fmt.format(matches.length);
  }

  function clearFind() {
    // Esc empties find and everything it showed: the count, the marks, the "only matches" cut.
    clearTimeout(findTimer);
    findInput.value = "";
    computeMatches(false);
    computeFilter();
    refresh();
    redrawAll();
  }

  function goToMatch(at) {
    if (!matches.length) return;
    matchAt = (at + matches.length) % matches.length;
    const i = matches[matchAt];
    revealAncestors(i);
    select(i, { reveal: true, recompute: true });
    showMatchCount();
  }

  function computeFilter() {
    const type = typeSelect.value;
    const status = statusSelect.value;
    const useMatches = onlyMatches.checked && findInput.value.trim() !== "";
    if (type === "" && status === "" && !useMatches) {
      keep = null;
      return;
    }
    const t = type === "" ? -1 : Number(type);
    const s = status === "" ? -1 : Number(status);
    keep = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      if ((t < 0 || L.types[i] === t) && (s < 0 || L.status[i] === s) && (!useMatches || isMatch[i])) {
        keep[i] = 1;
      }
    }
    // Ancestors of a kept span stay, so that it is seen where it sits in the tree; they are
    // expanded, since the filter is what the reader asked to see.
    for (let i = n - 1; i >= 0; i--) {
      const p = L.parent[i];
      if (keep[i] && p >= 0) {
        keep[p] = 1;
        collapsed[p] = 0;
      }
    }
  }

  function applyFilter() {
    computeFilter();
    refresh();
  }

  // --- Selection, details, URL ----------------------------------------------------------------

  function select(i, options = {}) {
    if (i < 0 || i >= n) return;
    selected = i;
    if (options.recompute) refresh();
    if (options.reveal !== false) ensureVisible(i);
    redrawAll();
    const url = new URL(window.location.href);
    url.searchParams.set("span", L.ids[i]);
    history.replaceState(null, "", url);
    if (options.open) openDetails(i);
  }

  let autoSelected = false;
  function autoSelect() {
    // The span named in the URL, else an error trace's first failure.
    autoSelected = true;
    const wanted = root.dataset.selected;
    const i = wanted ? L.ids.indexOf(wanted) : L.state === "ERROR" ? firstFailure() : -1;
    if (i >= 0) {
      revealAncestors(i);
      refresh();
      select(i, { open: true });
      rows.center(i);
    }
  }

  function firstFailure() {
    // An error trace opens on the span where it failed: the first failed span, or the
    // deepest failed span under it (a failed agent usually failed because a tool did).
    let found = -1;
    for (let i = 0; i < n; i++) {
      if (L.status[i] !== 2) continue;
      if (found >= 0 && i >= found + L.size[found]) break;
      found = i;
    }
    return found;
  }

  function openDetails(i) {
    const url = spanUrl + encodeURIComponent(L.ids[i]) + "/";
    if (!window.htmx) {
      window.location.href = url;
      return;
    }
    window.htmx.ajax("GET", url, { target: "#span-panel", swap: "innerHTML" });
  }

  // --- Events ---------------------------------------------------------------------------------

  function bind() {
    viewport.addEventListener("scroll", queueRender, { passive: true });
    window.addEventListener("resize", queueRender);
    viewport.addEventListener("click", (event) => {
      const row = event.target.closest(".wf-row");
      if (!row || row.dataset.i === "") return;
      const i = Number(row.dataset.i);
      if (event.target.closest(".wf-toggle")) {
        setCollapsed(i, collapsed[i] ? 0 : 1);
        return;
      }
      select(i, { open: true });
      viewport.focus({ preventScroll: true });
    });
    root.addEventListener("click", (event) => {
      const button = event.target.closest("[data-action]");
      if (!button) return;
      const action = button.dataset.action;
      if (action === "expand-all") {
        collapsed.fill(0);
        depthSelect.value = "";
        refresh();
      } else if (action === "collapse-all") {
        collapseToDepth(1);
        depthSelect.value = "1";
        refresh();
      } else if (action === "critical") toggleCritical();
      else if (action === "keys") keysDialog.showModal();
      else if (action === "find-next") goToMatch(matchAt + 1);
      else if (action === "find-prev") goToMatch(matchAt - 1);
    });
    depthSelect.addEventListener("change", () => {
      if (depthSelect.value === "") collapsed.fill(0);
      else collapseToDepth(Number(depthSelect.value));
      refresh();
    });
    findInput.addEventListener("input", () => {
      clearTimeout(findTimer);
      findTimer = setTimeout(() => {
        computeMatches(true);
        if (onlyMatches.checked) computeFilter();
        refresh();
        redrawAll();
      }, n > 10000 ? 200 : 80);
    });
    findInput.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        goToMatch(matchAt + (event.shiftKey ? -1 : 1));
      } else if (event.key === "Escape") {
        event.preventDefault();
        clearFind();
        findInput.blur();
        viewport.focus({ preventScroll: true });
      }
    });
    typeSelect.addEventListener("change", applyFilter);
    statusSelect.addEventListener("change", applyFilter);
    onlyMatches.addEventListener("change", applyFilter);
    document.addEventListener("keydown", onKey);
    panel.addEventListener("click", onPanelClick);
    document.addEventListener("visibilitychange", schedulePoll);
    // From the trace page's tabs (trace_views.js): shown, and a span link of the conversation.
    root.addEventListener("waterfall:shown", onShown);
    root.addEventListener("waterfall:select", (event) => selectById(event.detail.spanId));
  }

  function onShown() {
    rows.forgetRange();
    queueRender();
    // After a "waterfall:select" sent with it, which would otherwise be overridden.
    requestAnimationFrame(() => {
      if (L && !autoSelected) autoSelect();
    });
  }

  function selectById(id) {
    autoSelected = true;
    if (!L) {
      root.dataset.selected = id; // picked up when the layout arrives
      return;
    }
    const i = L.ids.indexOf(id);
    if (i < 0) return;
    revealAncestors(i);
    refresh();
    select(i, { open: true });
    rows.center(i);
    viewport.focus({ preventScroll: true });
  }

  function toggleCritical() {
    showCritical = !showCritical;
    root.querySelector('[data-action="critical"]').setAttribute("aria-pressed", String(showCritical));
    root.classList.toggle("show-critical", showCritical);
    if (showCritical) {
      // The whole path is made visible: it is what the reader asked to see.
      for (const i of L.critical) revealAncestors(i);
      refresh();
    }
    redrawAll();
  }

  function onKey(event) {
    if (!window.Spyglass.treeKeyAllowed(event, keysDialog)) return;
    const target = event.target;
    const tablist = target.closest && target.closest('[role="tablist"]');
    if (tablist && (event.key === "ArrowLeft" || event.key === "ArrowRight")) {
      // Arrows move between the details tabs, as in any tab list, not in the tree.
      const tabs = [...tablist.querySelectorAll('[role="tab"]')];
      const next = tabs[(tabs.indexOf(target) + (event.key === "ArrowRight" ? 1 : -1) + tabs.length) % tabs.length];
      event.preventDefault();
      next.focus();
      next.click();
      return;
    }
    if (root.hidden) return; // the Conversation tab is shown: keys are not the tree's
    const handlers = {
      j: () => rows.move(1), ArrowDown: () => rows.move(1),
      k: () => rows.move(-1), ArrowUp: () => rows.move(-1),
      ArrowLeft: rows.left, ArrowRight: rows.right,
      Enter: () => selected >= 0 && openDetails(selected),
      "/": () => findInput.focus(),
      "?": () => (keysDialog.open ? keysDialog.close() : keysDialog.showModal()),
      c: toggleCritical,
    };
    window.Spyglass.runTreeKey(event, handlers, L);
  }

  function onPanelClick(event) {
    const tab = event.target.closest("[data-tab]");
    if (!tab) return;
    const detail = tab.closest(".span-detail");
    for (const t of detail.querySelectorAll("[data-tab]")) {
      t.setAttribute("aria-selected", t === tab ? "true" : "false");
    }
    for (const p of detail.querySelectorAll("[data-tab-panel]")) {
      p.hidden = p.dataset.tabPanel !== tab.dataset.tab;
    }
  }

  // --- In-progress traces ---------------------------------------------------------------------

  let pollTimer = 0;
  function schedulePoll() {
    clearTimeout(pollTimer);
    if (!L || L.state !== "IN_PROGRESS" || document.visibilityState !== "visible") return;
    pollTimer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    try {
      const known = encodeURIComponent(L.span_count + ":" + L.state);
      const response = await fetch(layoutUrl + "?known=" + known);
      if (response.status === 200) {
        const top = viewport.scrollTop;
        apply(await response.json(), snapshot());
        showState(L.state);
        viewport.scrollTop = top;
        queueRender();
      }
    } catch (error) {
      statusLine.textContent += " · update failed, retrying";
    }
    schedulePoll();
  }

  function showState(state) {
    // The header's badge (partials/state_badge.html) follows the trace as it finishes.
    const badge = document.querySelector("[data-trace-state] .badge");
    if (!badge) return;
    badge.className = "badge state-" + state.toLowerCase();
    const labels = { OK: "OK", ERROR: "Error", IN_PROGRESS: "In progress", CANCELLED: "Cancelled" };
    badge.textContent = labels[state] || state;
  }

  // --- Start ----------------------------------------------------------------------------------

  bind();
  load()
    .then(() => {
      performance.mark("wf-rows");
      // Behind the Conversation tab, nothing is selected (nor written in the URL) until shown.
      if (!root.hidden) autoSelect();
      schedulePoll();
      requestAnimationFrame(() => {
        performance.mark("wf-interactive");
        root.dataset.ready = "1";
      });
    })
    .catch((error) => {
      statusLine.textContent = "The waterfall could not be loaded (" + error.message + "). Reload to retry.";
      statusLine.classList.add("error-text");
    });
})();
