// The trace page's Conversation / Waterfall tabs (a chat trace only).
//
// The conversation is an htmx partial fetched the first time its tab is shown (the
// "show-conversation" trigger). A span link in it (`?span=<id>&view=waterfall`, which also
// works as a plain link) switches to the waterfall and asks waterfall.js to select and open the
// span through a "waterfall:select" event. The URL follows the tab, so a reload or a shared link
// opens the same view. No inline scripts or handlers: the CSP forbids them.
"use strict";

(() => {
  const tabs = [...document.querySelectorAll("[data-trace-view]")];
  const conversation = document.getElementById("conversation");
  const waterfall = document.getElementById("waterfall");
  if (!tabs.length || !conversation || !waterfall) return;

  function show(view) {
    for (const tab of tabs) {
      tab.setAttribute("aria-selected", tab.dataset.traceView === view ? "true" : "false");
    }
    conversation.hidden = view !== "conversation";
    waterfall.hidden = view !== "waterfall";
    const url = new URL(window.location.href);
    url.searchParams.set("view", view);
    if (view === "conversation") {
      url.searchParams.delete("span");
      if (window.htmx) window.htmx.trigger(conversation, "show-conversation");
    } else {
      // Rows are drawn for the real viewport height now that the waterfall is displayed.
      waterfall.dispatchEvent(new CustomEvent("waterfall:shown"));
    }
    history.replaceState(null, "", url);
  }

  for (const tab of tabs) {
    tab.addEventListener("click", (event) => {
      event.preventDefault();
      show(tab.dataset.traceView);
    });
  }

  conversation.addEventListener("click", (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    const toWaterfall = event.target.closest("[data-trace-view-link]");
    const link = event.target.closest("a[data-span-id]");
    if (!link && !toWaterfall) return;
    event.preventDefault();
    show("waterfall");
    if (link) {
      waterfall.dispatchEvent(new CustomEvent("waterfall:select", { detail: { spanId: link.dataset.spanId } }));
    }
  });
})();
