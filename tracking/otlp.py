"""OpenTelemetry OTLP/HTTP span ingest (`POST /v1/traces`, protobuf and JSON)."""
