// "Copy" buttons: <button data-copy="#id"> copies the text of the element #id. A static file,
// not inline JS, so that the page's Content-Security-Policy can forbid inline scripts.
(function () {
  "use strict";

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function copied(button, ok) {
    var label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = ok ? "Copied" : "Press Ctrl+C to copy";
    button.classList.toggle("copy-failed", !ok);
    window.setTimeout(function () {
      button.textContent = label;
      button.classList.remove("copy-failed");
    }, 2000);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.dataset.copy);
    if (!source) return;
    var text = source.textContent.trim();
    // The clipboard API needs a secure context (https or localhost); elsewhere, select the
    // text so that the user can copy it by hand.
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { copied(button, true); },
        function () { selectText(source); copied(button, false); }
      );
    } else {
      selectText(source);
      copied(button, false);
    }
  });
})();
