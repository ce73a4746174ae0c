// htmx polling on every page: an element marked `data-poll` skips its requests while the tab
// is hidden; its next tick after the tab shows again catches up. No inline scripts (CSP).
"use strict";

document.addEventListener("htmx:beforeRequest", (event) => {
  if (document.hidden && event.detail.elt.matches("[data-poll]")) {
    event.preventDefault();
  }
});
