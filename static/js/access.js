// The access pages: a form re-rendered with its errors comes back as 422; show it in place.
"use strict";

document.addEventListener("htmx:beforeSwap", (event) => {
  if (event.detail.xhr.status === 422) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
