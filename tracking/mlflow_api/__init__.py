"""The MLflow REST API that an unmodified mlflow 3 client speaks (../shared/mlflow-protocol.md)."""
