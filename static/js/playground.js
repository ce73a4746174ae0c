// The playground: Ctrl/Cmd+Enter sends a message. Answers poll through polling.js (data-poll)
// and forms re-rendered with errors (422) swap in through base.html's htmx config.
"use strict";

document.addEventListener("keydown", (event) => {
  // Ctrl/Cmd+Enter in the message box sends it.
  const box = event.target;
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && box.matches("[data-message]")) {
    event.preventDefault();
    box.form.requestSubmit();
  }
});
