"""The MLflow REST API that an unmodified mlflow 3 client speaks (../shared/mlflow-protocol.md).

Thin views over `tracking.ingest` and the tracking tables, one module per resource:
experiments.py, runs.py, logged_models.py, traces.py, artifacts.py and server.py hold the views;
requests.py reads request messages, ids.py turns MLflow ids into rows, pages.py pages lists,
entities.py writes MLflow's JSON, and errors.py answers failures the way the client expects
(search filter and order-by strings are parsed by tracking/filters.py, shared with the pages).
urls.py lists the paths and explains why `/version` is not one of them.
"""
