// The trace list: the live rows' arrival, and "select all" for the bulk actions. No inline
// scripts (CSP); its live polling pauses in a hidden tab through polling.js (data-poll).
"use strict";

document.addEventListener("htmx:afterSwap", (event) => {
  // Rows arrived: the "no traces yet" row no longer says the truth.
  if (event.detail.elt.matches && event.detail.elt.matches("tbody.live, tbody.new-rows")) {
    for (const row of document.querySelectorAll("#trace-rows .empty-row")) {
      row.remove();
    }
  }
});

document.addEventListener("change", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || !box.matches("[data-select-all]")) {
    return;
  }
  const table = box.closest("table");
  for (const row of table.querySelectorAll('tbody input[type="checkbox"][name="trace"]')) {
    row.checked = box.checked;
  }
});
