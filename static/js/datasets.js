// A dataset's records: "select all" for deleting the selected ones. No inline scripts (CSP).
"use strict";

document.addEventListener("change", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || !box.matches("[data-select-all]")) {
    return;
  }
  const table = box.closest("table");
  for (const row of table.querySelectorAll('tbody input[type="checkbox"][name="record"]')) {
    row.checked = box.checked;
  }
});
