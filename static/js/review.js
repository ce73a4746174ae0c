// The review screen's keys: j/k next/previous item, 1-9 answer the current question, arrows
// move between questions, Enter submits, s skips, ? lists the keys. Everything here has a
// plain link or button too; the keys only press them.
(function () {
  "use strict";

  const form = document.getElementById("review-form");
  const dialog = document.getElementById("review-keys");
  const questions = form ? Array.from(form.querySelectorAll("[data-question]")) : [];
  let current = 0;

  function setCurrent(index) {
    if (!questions.length) return;
    current = Math.max(0, Math.min(index, questions.length - 1));
    questions.forEach((q, i) => q.classList.toggle("current", i === current));
    questions[current].scrollIntoView({ block: "nearest" });
  }

  // Chrome may leave focus on the closed dialog's Close button: Enter would then press that
  // button instead of submitting the answers. Focus goes back to the page.
  function leaveDialog() {
    if (dialog && dialog.contains(document.activeElement)) document.activeElement.blur();
  }

  function toggleKeys() {
    if (!dialog) return;
    if (dialog.open) {
      dialog.close();
      leaveDialog();
    } else dialog.showModal();
  }

  function answer(digit) {
    const question = questions[current];
    if (!question) return;
    const choices = question.querySelectorAll("input[type=radio], input[type=checkbox]");
    if (choices.length) {
      const choice = choices[digit - 1];
      if (!choice || choice.disabled) return;
      if (choice.type === "checkbox") {
        choice.checked = !choice.checked;
      } else {
        choice.checked = true;
        setCurrent(current + 1);
      }
      return;
    }
    // A number or text question: the digit goes into its field.
    const field = question.querySelector("input, textarea");
    if (field && !field.disabled) {
      field.focus();
      field.value += String(digit);
    }
  }

  function submit(action) {
    const button = form && form.querySelector(action === "skip" ? "[data-skip]" : "[data-submit]");
    if (button && !button.disabled) form.requestSubmit(button);
  }

  function inField(target) {
    return target.closest("input[type=text], input[type=number], input:not([type]), textarea, select");
  }

  questions.forEach((q, i) => q.addEventListener("focusin", () => setCurrent(i)));
  document.querySelectorAll("[data-keys-open]").forEach((b) => b.addEventListener("click", toggleKeys));
  if (dialog) dialog.addEventListener("close", leaveDialog);

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.metaKey || event.isComposing) return;
    const field = inField(event.target);
    if (field) {
      if (event.key === "Escape") field.blur();
      else if (event.key === "Enter" && event.ctrlKey) { event.preventDefault(); submit("submit"); }
      return; // typing: no shortcuts (Enter in a one-line field submits natively)
    }
    if (event.ctrlKey) return;
    if (dialog && dialog.open && event.key !== "?") return;
    const key = event.key;
    let handled = true;
    if (key === "?") toggleKeys();
    else if (key === "j" || key === "k") {
      const link = document.querySelector(`[data-key-link="${key}"]`);
      if (link) window.location.assign(link.href);
    } else if (/^[1-9]$/.test(key)) answer(Number(key));
    else if (key === "ArrowDown") setCurrent(current + 1);
    else if (key === "ArrowUp") setCurrent(current - 1);
    else if (key === "Enter" && !(event.target.closest("button, a") && !dialog?.contains(event.target)))
      submit("submit");
    else if (key === "s") submit("skip");
    else handled = false;
    if (handled) event.preventDefault();
  });
  // The keys work from here on (the browser test waits for this before it presses any).
  document.body.dataset.reviewKeys = "on";
})();
