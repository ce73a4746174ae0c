// Pairwise review, keyboard first: 1 = A, 2 = B, 3 = tie, Enter submits (Ctrl/Cmd+Enter from
// the rationale, where Enter starts a new line). No inline scripts (CSP).
"use strict";

document.addEventListener("keydown", (event) => {
  const form = document.querySelector("[data-pairwise-form]");
  if (!form || event.altKey || event.isComposing) {
    return;
  }
  const typing = event.target instanceof HTMLTextAreaElement ||
    (event.target instanceof HTMLInputElement && event.target.type === "text");
  if (event.key === "Enter") {
    if (typing && !(event.ctrlKey || event.metaKey)) {
      return;
    }
    event.preventDefault();
    form.requestSubmit();
    return;
  }
  if (typing || event.ctrlKey || event.metaKey) {
    return;
  }
  const radio = form.querySelector(`input[data-key="${CSS.escape(event.key)}"]`);
  if (radio) {
    event.preventDefault();
    radio.checked = true;
    radio.focus();
  }
});
