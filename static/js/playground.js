// The playground: answers poll only while the tab is visible, forms re-rendered with errors
// (422) are swapped in, and the custom_inputs editor shows when its gear is on.
"use strict";

document.addEventListener("htmx:beforeRequest", (event) => {
  // A hidden tab does not poll; the next tick after it shows again catches up.
  if (document.hidden && event.detail.elt.matches("[data-poll]")) {
    event.preventDefault();
  }
});

document.addEventListener("htmx:beforeSwap", (event) => {
  // A form with errors comes back as 422 with the form re-rendered: show it.
  if (event.detail.xhr.status === 422) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});

document.addEventListener("keydown", (event) => {
  // Ctrl/Cmd+Enter in the message box sends it.
  const box = event.target;
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && box.matches("[data-message]")) {
    event.preventDefault();
    box.form.requestSubmit();
  }
});
