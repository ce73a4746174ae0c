// The trace list: live polling only while the tab is visible, and "select all" for the
// bulk actions. No inline scripts (CSP).
"use strict";

document.addEventListener("htmx:beforeRequest", (event) => {
  // A hidden tab does not poll; the next tick after it shows again catches up.
  if (document.hidden && event.detail.elt.matches("[data-live]")) {
    event.preventDefault();
  }
});

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
