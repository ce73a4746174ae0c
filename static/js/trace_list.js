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

// "Diff": enabled when exactly two traces are selected; opens the trace diff with the older
// one as A (the baseline) and the newer as B. A button rather than a form field: the diff
// page takes ?a=&b=, and it needs JavaScript anyway.
function selectedTraces() {
  return [...document.querySelectorAll('input[type="checkbox"][name="trace"]:checked')];
}

function updateDiffButton() {
  const button = document.querySelector("[data-diff-selected]");
  if (button) {
    button.disabled = selectedTraces().length !== 2;
  }
}

document.addEventListener("change", updateDiffButton);
document.addEventListener("htmx:afterSettle", updateDiffButton);
document.addEventListener("DOMContentLoaded", updateDiffButton);

document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("[data-diff-selected]");
  if (!button) {
    return;
  }
  const boxes = selectedTraces();
  if (boxes.length !== 2) {
    return;
  }
  boxes.sort((x, y) => Number(x.dataset.time) - Number(y.dataset.time));
  const query = new URLSearchParams({ a: boxes[0].value, b: boxes[1].value });
  window.location.href = button.dataset.diffUrl + "?" + query.toString();
});
