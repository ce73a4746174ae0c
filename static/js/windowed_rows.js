// Windowed rows of a tree in pre-order: what the waterfall (waterfall.js) and the trace diff
// (trace_diff.js) share, loaded before either of them.
//
// A tree in pre-order is flat arrays: a node's subtree is the `size[i]` entries from i, so the
// visible-row list, collapsing and filtering are single passes. Only the rows near the viewport
// are in the DOM: fixed-height rows, absolutely positioned over a sizer as tall as all visible
// rows, recycled on scroll. The page keeps what differs: how a row is built and filled, what
// selecting means, its own keys. No inline scripts or handlers (the CSP forbids them).
"use strict";

(() => {
  const Spyglass = (window.Spyglass = window.Spyglass || {});

  // Glyphs found in common system fonts (emoji-range symbols render as empty boxes on some).
  const TYPE_ICONS = {
    AGENT: "◆", CHAIN: "↦", LLM: "✦", CHAT_MODEL: "✦", TOOL: "⚒", RETRIEVER: "⌕",
    EMBEDDING: "⋯", RERANKER: "⇅", PARSER: "¶", MEMORY: "▣", WORKFLOW: "⇉", TASK: "▢",
    GUARDRAIL: "⊘", EVALUATOR: "✓",
  };
  const KNOWN_TYPES = new Set(Object.keys(TYPE_ICONS).concat(["UNKNOWN"]));

  /** The CSS class of each span type name (type-llm, type-chat-model, ..., type-other). */
  function typeClasses(typeNames) {
    return typeNames.map((t) =>
      KNOWN_TYPES.has(t) ? "type-" + t.toLowerCase().replace(/_/g, "-") : "type-other");
  }

  const fmt = new Intl.NumberFormat("en-US");

  function duration(ns) {
    if (ns < 0) return "running";
    if (ns < 1e3) return Math.round(ns) + " ns";
    if (ns < 1e6) return scaled(ns / 1e3, "µs");
    if (ns < 1e9) return scaled(ns / 1e6, "ms");
    const s = ns / 1e9;
    if (s < 60) return s.toFixed(2) + " s";
    const m = Math.floor(s / 60);
    return m + " m " + String(Math.floor(s % 60)).padStart(2, "0") + " s";
  }
  function scaled(v, unit) {
    return (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)) + " " + unit;
  }

  /** GET the layout JSON and set the performance mark `mark` once it is parsed. */
  async function fetchLayout(url, mark) {
    // A plain same-origin GET, so that it matches the <link rel="preload"> in the page head.
    const response = await fetch(url);
    if (!response.ok) throw new Error("layout: HTTP " + response.status);
    const data = await response.json();
    performance.mark(mark);
    return data;
  }

  /** The time axis labels and the grid lines behind the bars, `ticks` in ns of `total`. */
  function drawAxis(axis, grid, total, ticks) {
    total = Math.max(total, 1);
    const labels = [];
    const lines = [];
    for (const t of ticks) {
      const pct = (100 * t) / total;
      // A tick at the very end would have its label overlap the previous one: line only.
      if (pct <= 92) {
        const label = document.createElement("span");
        label.className = "wf-tick";
        label.style.left = pct + "%";
        label.textContent = t === 0 ? "0" : duration(t);
        labels.push(label);
      }
      const line = document.createElement("span");
      line.className = "wf-gridline";
      line.style.left = pct + "%";
      lines.push(line);
    }
    axis.replaceChildren(...labels);
    grid.replaceChildren(...lines);
  }

  /** Whether a key press belongs to the page's tree keys: no modifier, not typing, no dialog. */
  function treeKeyAllowed(event, keysDialog) {
    if (event.ctrlKey || event.metaKey || event.altKey) return false;
    const target = event.target;
    const typing = target.closest && target.closest("input, select, textarea, [contenteditable]");
    return !(typing || (keysDialog.open && event.key !== "?"));
  }

  /** Runs the handler of `handlers` for the key, if any and the layout is there. */
  function runTreeKey(event, handlers, ready) {
    const handler = handlers[event.key];
    if (!handler || !ready) return;
    // Keys pressed on a link or a button in the details panel keep their usual meaning.
    const target = event.target;
    if (event.key === "Enter" && target.closest && target.closest("a, button, summary")) return;
    event.preventDefault();
    handler();
  }

  /**
   * The rows of one tree view. options:
   *   viewport, sizer: the scrolling element and the element that gives it its height;
   *   rowH: the row height in px (as in the page's CSS); overscan: rows drawn beyond the view;
   *   heightVar: the CSS variable set on the viewport to the rows' height;
   *   key: the row element's data attribute that holds the index it shows ("i", "r");
   *   tree(): { n, size, parent, collapsed, keep } as they are now;
   *   makeRow(), fillRow(row, index, rowNumber): the page's rows;
   *   afterRefresh(): called once the visible rows changed (a status line, say);
   *   selected(), select(index), setCollapsed(index, value): for move/left/right.
   */
  function windowedRows(options) {
    const { viewport, sizer, rowH, overscan, heightVar, key, tree, makeRow, fillRow } = options;
    const pool = []; // row elements, reused
    let visible = new Int32Array(0); // indexes of the rows, top to bottom
    let rowOf = new Int32Array(0); // index -> row number in `visible`, -1 if hidden
    let renderQueued = false;
    let lastRange = [0, -1];

    function computeVisible() {
      const { n, size, collapsed, keep } = tree();
      const out = new Int32Array(n);
      let k = 0;
      let i = 0;
      while (i < n) {
        if (keep && !keep[i]) {
          i += size[i]; // nothing below is kept either: keep includes every kept node's ancestors
          continue;
        }
        out[k++] = i;
        i += collapsed[i] ? size[i] : 1;
      }
      visible = out.subarray(0, k);
      rowOf = new Int32Array(n).fill(-1);
      for (let r = 0; r < k; r++) rowOf[visible[r]] = r;
    }

    function refresh() {
      computeVisible();
      sizer.style.height = visible.length * rowH + "px";
      viewport.style.setProperty(heightVar, visible.length * rowH + "px");
      redrawAll();
      if (options.afterRefresh) options.afterRefresh();
    }

    function queueRender() {
      if (renderQueued) return;
      renderQueued = true;
      requestAnimationFrame(() => {
        renderQueued = false;
        render(false);
      });
    }

    function render(force) {
      const top = viewport.scrollTop;
      const height = viewport.clientHeight || 600;
      const first = Math.max(0, Math.floor(top / rowH) - overscan);
      const last = Math.min(visible.length - 1, Math.ceil((top + height) / rowH) + overscan);
      if (!force && first === lastRange[0] && last === lastRange[1]) return;
      lastRange = [first, last];
      const count = Math.max(0, last - first + 1);
      while (pool.length < count) {
        const row = makeRow();
        pool.push(row);
        viewport.appendChild(row);
      }
      for (let r = 0; r < pool.length; r++) {
        const row = pool[r];
        if (r < count) {
          fillRow(row, visible[first + r], first + r);
          row.hidden = false;
        } else if (!row.hidden) {
          row.hidden = true;
          row.dataset[key] = "";
        }
      }
    }

    function redrawAll() {
      for (const row of pool) row._dirty = true;
      lastRange = [0, -1];
      render(true);
    }

    /** The next frame draws the rows again even if the range is the same (a tab was shown). */
    function forgetRange() {
      lastRange = [0, -1];
    }

    function ensureVisible(i) {
      const r = rowOf[i];
      if (r < 0) return;
      const top = r * rowH;
      if (top < viewport.scrollTop) viewport.scrollTop = top;
      else if (top + rowH > viewport.scrollTop + viewport.clientHeight) {
        viewport.scrollTop = top + rowH - viewport.clientHeight;
      }
    }

    /** Scrolls so that the row of `i` is in the middle of the viewport. */
    function center(i) {
      viewport.scrollTop = Math.max(0, rowOf[i] * rowH - viewport.clientHeight / 2);
    }

    function revealAncestors(i) {
      const { parent, collapsed } = tree();
      for (let p = parent[i]; p >= 0; p = parent[p]) collapsed[p] = 0;
    }

    function move(delta) {
      if (!visible.length) return;
      const selected = options.selected();
      const r = selected >= 0 && rowOf[selected] >= 0
        ? rowOf[selected] + delta : delta > 0 ? 0 : visible.length - 1;
      options.select(visible[Math.max(0, Math.min(visible.length - 1, r))]);
    }

    function left() {
      const selected = options.selected();
      if (selected < 0) return;
      const { size, parent, collapsed } = tree();
      if (size[selected] > 1 && !collapsed[selected]) options.setCollapsed(selected, 1);
      else if (parent[selected] >= 0) options.select(parent[selected]);
    }

    function right() {
      const selected = options.selected();
      if (selected < 0) return;
      const { size, collapsed, keep } = tree();
      if (size[selected] > 1 && collapsed[selected]) options.setCollapsed(selected, 0);
      else if (size[selected] > 1 && (!keep || keep[selected + 1])) options.select(selected + 1);
    }

    return {
      get visible() {
        return visible;
      },
      get rowOf() {
        return rowOf;
      },
      refresh, queueRender, render, redrawAll, forgetRange, ensureVisible, center,
      revealAncestors, move, left, right,
    };
  }

  Object.assign(Spyglass, {
    TYPE_ICONS, typeClasses, fmt, duration, fetchLayout, drawAxis, treeKeyAllowed, runTreeKey,
    windowedRows,
  });
})();
