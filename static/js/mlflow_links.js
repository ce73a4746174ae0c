// The mlflow client prints links into MLflow's own UI ("View run ... at:
// http://host/#/experiments/3/runs/<id>"). Its routes live in the URL fragment, which never
// reaches the server, so the home page that such a link opens sends the browser on to the
// Spyglass page that shows the same thing.
(() => {
  "use strict";
  const route = window.location.hash.replace(/^#\/?/, "").split("?")[0].split("/");
  const id = (value) => /^[\w-]{1,64}$/.test(value || "");
  const traces = (experiment, query) => {
    const params = new URLSearchParams({ experiment });
    if (query) params.set("q", query);
    return `/traces/?${params}`;
  };

  let target = null;
  if (route[0] === "models" && id(route[1])) {
    target = `/models/${route[1]}/`;
  } else if (route[0] === "experiments" && /^\d+$/.test(route[1] || "")) {
    const [, experiment, kind, item] = route;
    if (kind === "models" && id(item)) {
      target = `/models/${item}/`;
    } else if (kind === "runs" && id(item)) {
      // Spyglass has no run page: the run's traces are what a user came to see.
      target = traces(experiment, `metadata.mlflow.sourceRun = "${item}"`);
    } else {
      target = traces(experiment);
    }
  }
  if (target) window.location.replace(target);
})();
