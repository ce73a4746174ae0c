"""Points the worker's mlflow client at this Spyglass, once per process, before the first
logged model loads.

The logged model's code runs mlflow as its author did, configured by environment variables:
`MLFLOW_TRACKING_URI` (where `models:/` and `runs:/` URIs are read; unset, mlflow would open a
`mlflow.db` in the worker's working directory) and the OTLP traces endpoint (where the spans
of its `@mlflow.trace` functions go, so they join the playground's trace: see
`logged_model.nested_under`). Both point at `SPYGLASS_INTERNAL_URL` unless the operator set
them. With logins on, mlflow also needs credentials: the operator's
`MLFLOW_TRACKING_TOKEN` / `_USERNAME` + `_PASSWORD`, else a token of the worker's own account
(playground/service_account.py), sent to OTLP as well.
"""

from __future__ import annotations

import base64
import os
import sys
import threading
from collections.abc import MutableMapping
from urllib.parse import quote

from django.conf import settings

from playground.service_account import worker_token
from webapp.auth import auth_enabled

_lock = threading.Lock()
_done = False

# What makes mlflow export over OTLP (mlflow/tracing/provider.py), traces and endpoint alike.
OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_OTLP_HEADER_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")


def point_mlflow_at_spyglass() -> None:
    """Set what the operator left unset; the first call in a process does it, later ones
    return at once."""
    global _done
    with _lock:
        if _done:
            return
        configure(os.environ)
        if "mlflow.tracing" in sys.modules:
            # mlflow made its span exporter from the environment it had then.
            sys.modules["mlflow.tracing"].reset()
        _done = True


def reset() -> bool:
    """Forget that this process is configured (tests: each is a fresh worker); True when it
    was, so the caller knows the environment changed."""
    global _done
    with _lock:
        was, _done = _done, False
    return was


def configure(environ: MutableMapping[str, str]) -> None:
    """Fill in `environ` (the process's, in a worker) for a logged model's mlflow client."""
    url = settings.SPYGLASS_INTERNAL_URL.rstrip("/")
    environ.setdefault("MLFLOW_TRACKING_URI", url)
    # mlflow reports usage to its makers unless told not to; the worker reaches only what
    # its operator configured.
    environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    otlp_is_ours = not any(environ.get(name) for name in OTLP_ENDPOINT_VARIABLES)
    if otlp_is_ours:
        environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{url}/v1/traces"
        # mlflow's default is gRPC, which Spyglass does not serve.
        environ.setdefault("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
        # mlflow exports OTLP through a batch processor, every 5 s by default: the model's
        # spans would join the playground's trace seconds after its answer shows (and a worker
        # stopped meanwhile would lose them). The OTel SDK's own setting makes it 100 ms.
        environ.setdefault("OTEL_BSP_SCHEDULE_DELAY", "100")
    if not auth_enabled():
        return
    authorization = _operator_credentials(environ)
    if authorization is None:
        token = worker_token()
        environ.setdefault("MLFLOW_TRACKING_TOKEN", token)
        authorization = f"Bearer {token}"
    if otlp_is_ours and not any(environ.get(name) for name in _OTLP_HEADER_VARIABLES):
        # OTel reads `name=value` pairs with URL-encoded values.
        environ["OTEL_EXPORTER_OTLP_TRACES_HEADERS"] = f"authorization={quote(authorization)}"


def _operator_credentials(environ: MutableMapping[str, str]) -> str | None:
    """The Authorization header of the credentials the operator gave mlflow, if any."""
    if environ.get("MLFLOW_TRACKING_TOKEN"):
        return f"Bearer {environ['MLFLOW_TRACKING_TOKEN']}"
    username = environ.get("MLFLOW_TRACKING_USERNAME")
    if username:
        pair = f"{username}:{environ.get('MLFLOW_TRACKING_PASSWORD', '')}"
        return f"Basic {base64.b64encode(pair.encode()).decode()}"
    return None
