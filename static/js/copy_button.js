// Copy buttons: <button data-copy-target="some-id"> copies the text of the element #some-id.
// A static file, not inline JS, so that the Content-Security-Policy forbids inline scripts.
(function () {
  "use strict";

  function selectText(element) {
    // Without clipboard access (plain HTTP), select the text so that Ctrl+C copies it.
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function say(button, text) {
    if (!button.dataset.label) button.dataset.label = button.textContent;
    button.textContent = text;
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(() => (button.textContent = button.dataset.label), 1500);
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("[data-copy-target]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copyTarget);
    if (!source) return;
    const text = source.textContent.trim();
    const byHand = () => {
      selectText(source);
      say(button, "Press Ctrl+C");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(() => say(button, "Copied"), byHand);
    } else {
      byHand();
    }
  });
})();
