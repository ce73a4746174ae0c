// Light/dark theme. Loaded in <head> without `defer` so that a stored choice is on <html>
// before the first paint. With no stored choice there is no data-theme attribute and the
// stylesheet follows prefers-color-scheme.
(() => {
  "use strict";
  const KEY = "spyglass-theme";
  const root = document.documentElement;
  const systemDark = window.matchMedia("(prefers-color-scheme: dark)");

  // localStorage throws in some privacy modes; the theme then lasts for the page only.
  const load = () => {
    try {
      return window.localStorage.getItem(KEY);
    } catch {
      return null;
    }
  };
  const save = (theme) => {
    try {
      window.localStorage.setItem(KEY, theme);
    } catch {
      // ignored: see above
    }
  };

  const stored = load();
  if (stored === "light" || stored === "dark") {
    root.dataset.theme = stored;
  }

  const current = () => root.dataset.theme || (systemDark.matches ? "dark" : "light");

  const label = (button) => {
    const next = current() === "dark" ? "light" : "dark";
    button.setAttribute("aria-label", `Switch to ${next} theme`);
    button.title = `Switch to ${next} theme`;
  };

  document.addEventListener("DOMContentLoaded", () => {
    const buttons = document.querySelectorAll("[data-theme-toggle]");
    for (const button of buttons) {
      label(button);
      button.addEventListener("click", () => {
        const next = current() === "dark" ? "light" : "dark";
        root.dataset.theme = next;
        save(next);
        buttons.forEach(label);
      });
    }
    systemDark.addEventListener("change", () => buttons.forEach(label));
  });
})();
