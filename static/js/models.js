// The model list's "Compare selected" button: counts the ticked versions and is enabled for
// 2 to 4 of them. Without this script the form still submits and the compare page explains.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("compare-form");
  if (!form) return;
  const button = form.querySelector("[data-compare-button]");
  const label = form.querySelector("[data-compare-count]");
  const boxes = () => document.querySelectorAll('input[name="ids"][form="compare-form"]');

  const update = () => {
    const ticked = [...boxes()].filter((box) => box.checked).length;
    button.disabled = ticked < 2 || ticked > 4;
    label.textContent = ticked ? `${ticked} selected` : "Select 2 to 4 versions";
  };
  document.addEventListener("change", (event) => {
    if (event.target.matches('input[name="ids"][form="compare-form"]')) update();
  });
  update();
});
