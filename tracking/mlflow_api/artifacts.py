"""The `mlflow-artifacts` proxy: upload, download, list and delete files under the artifact
root (mlflow-protocol.md §3.6), on Django's default storage.

Only the Storage API is used (save, open, exists, listdir, size, delete), so S3-compatible
storage is a settings change. Uploads stream through a spooled temporary file, so a large
model never sits in memory, and are capped by SPYGLASS_MAX_ARTIFACT_BYTES (413 past it).
Paths are relative to the artifact root; `..`, absolute paths, backslashes and NUL are
refused with a 400 before storage sees them.

Two uploads mean more than a file:
- `<exp>/traces/<trace_id>/artifacts/traces.json` holds a trace's spans: it is parsed into
  span rows through ingest (a bad document is a 400 and nothing is stored), and its GET is
  served from the stored upload or, when spans arrived another way, written from the rows.
- `<exp>/models/<model_id>/artifacts/MLmodel` describes a logged model: the
  `flavors.python_function.config` of a models-from-code agent (its `model_config`) is copied
  to `LoggedModel.model_config` so pages can show and compare it.
"""

from __future__ import annotations

import logging
import tempfile
from typing import IO

import yaml
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.http import HttpRequest, HttpResponse, JsonResponse

from access.rules import access_for
from tracking import downloads
from tracking.mlflow_api import ids, traces
from tracking.mlflow_api.entities import model_artifact_uri, run_artifact_uri
from tracking.mlflow_api.errors import MlflowError, invalid, mlflow_endpoint, not_found, too_large
from tracking.mlflow_api.requests import Message
from tracking.models import LoggedModel, Trace
from tracking.storage import MLMODEL_RE, TRACES_JSON_RE, model_artifact_path, run_artifact_path

logger = logging.getLogger(__name__)

DEFAULT_MAX_ARTIFACT_BYTES = 1024**3
CHUNK_BYTES = 1024 * 1024
MLMODEL_MAX_BYTES = 10 * 1024 * 1024


def max_artifact_bytes() -> int:
    return getattr(settings, "SPYGLASS_MAX_ARTIFACT_BYTES", DEFAULT_MAX_ARTIFACT_BYTES)


def clean_path(path: str, *, allow_root: bool = False) -> str:
    """A storage name for a client-given artifact path, or a 400 for one that could escape
    the artifact root or mean different things on different storages (backslashes, control
    characters such as NUL)."""
    if path == "" and allow_root:
        return ""
    if not path or "\\" in path or path.startswith("/") or any(c < " " for c in path):
        raise invalid(f"Invalid artifact path {path!r}.")
    segments = path.rstrip("/").split("/") if allow_root else path.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise invalid(f"Invalid artifact path {path!r}.")
    # Past these a filesystem refuses the name (ENAMETOOLONG), which was a 500.
    if len(path) > 1024 or any(len(segment.encode()) > 255 for segment in segments):
        raise invalid("Artifact paths are limited to 1024 characters, 255 bytes a segment.")
    return "/".join(segments)


# --- Upload --------------------------------------------------------------------------------


def _spool_body(request: HttpRequest) -> tempfile.SpooledTemporaryFile:
    """The request body in a temporary file (in memory while small), at most the cap."""
    limit = max_artifact_bytes()
    length = request.META.get("CONTENT_LENGTH") or ""
    if not length.isdigit():
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            # WSGI gives Django no body without a length; refuse rather than store nothing.
            raise invalid("Uploads need a Content-Length (chunked bodies are not accepted).")
        length = "0"
    if int(length) > limit:
        raise too_large(f"The artifact is larger than this server accepts ({limit} bytes).")
    # Closed by the caller's `with`, or below when the body is too large.
    spool = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)  # noqa: SIM115
    received = 0
    while chunk := request.read(CHUNK_BYTES):
        received += len(chunk)
        if received > limit:
            spool.close()
            raise too_large(f"The artifact is larger than this server accepts ({limit} bytes).")
        spool.write(chunk)
    spool.seek(0)
    return spool


def _save(name: str, content: IO[bytes]) -> None:
    """Store `content` under exactly `name`, replacing what was there."""
    if default_storage.exists(name):
        default_storage.delete(name)
    saved = default_storage.save(name, File(content))
    if saved != name:
        # A concurrent upload of the same path got there first (storages pick a free name
        # rather than overwrite); both carried the same artifact, so keep theirs.
        default_storage.delete(saved)


def _read_small(content: IO[bytes], limit: int, what: str) -> bytes:
    data = content.read(limit + 1)
    content.seek(0)
    if len(data) > limit:
        raise too_large(f"{what} is larger than this server parses ({limit} bytes).")
    return data


def _model_config(path: str, content: IO[bytes]) -> None:
    """Copy a models-from-code agent's `model_config` from its MLmodel to the model row."""
    match = MLMODEL_RE.fullmatch(path)
    if not match:
        return
    data = content.read(MLMODEL_MAX_BYTES + 1)
    if len(data) > MLMODEL_MAX_BYTES:
        return
    try:
        mlmodel = yaml.safe_load(data)
    except yaml.YAMLError:
        logger.warning("MLmodel at %s is not valid YAML; model_config not updated", path)
        return
    flavors = mlmodel.get("flavors") if isinstance(mlmodel, dict) else None
    pyfunc = flavors.get("python_function") if isinstance(flavors, dict) else None
    config = pyfunc.get("config") if isinstance(pyfunc, dict) else None
    if isinstance(config, dict):
        LoggedModel.objects.filter(model_id=match.group(1)).set_model_config(config)


def _upload(request: HttpRequest, path: str) -> HttpResponse:
    with _spool_body(request) as content:
        if match := TRACES_JSON_RE.fullmatch(path):
            document = _read_small(content, settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "traces.json")
            traces.store_spans_document(int(match.group(1)), match.group(2), document)
            # The spans are rows now and a download writes the document from them: a copy
            # on disk would double every trace's storage and go stale when spans are re-sent.
            return JsonResponse({})
        _save(path, content)
        content.seek(0)
        _model_config(path, content)
    return JsonResponse({})


# --- Download, list, delete ----------------------------------------------------------------


def _missing(path: str) -> Exception:
    return not_found(f"No such artifact: '{path}'")


def _download(path: str) -> HttpResponse:
    if match := TRACES_JSON_RE.fullmatch(path):
        trace = Trace.objects.filter(
            trace_id=match.group(2), experiment_id=int(match.group(1))
        ).first()
        if trace is None:
            raise _missing(path)
        # Whichever way the spans came (this path, OTLP, the playground, the native API).
        return HttpResponse(traces.spans_document(trace), content_type="application/json")
    try:
        handle = default_storage.open(path, "rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        raise _missing(path) from None
    return downloads.download(handle, path)


def _remove(path: str) -> None:
    """Delete a file, or a directory and everything under it."""
    try:
        directories, files = default_storage.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        directories, files = [], []
    if not directories and not files and not default_storage.exists(path):
        raise _missing(path)
    for name in files:
        default_storage.delete(f"{path}/{name}")
    for name in directories:
        _remove(f"{path}/{name}")
    default_storage.delete(path)


@mlflow_endpoint(["GET", "PUT", "DELETE"])
def artifact(request: HttpRequest, artifact_path: str) -> HttpResponse:
    """GET downloads (streamed), PUT uploads (streamed), DELETE removes."""
    path = clean_path(artifact_path)
    if request.method == "PUT":
        return _upload(request, path)
    if request.method == "DELETE":
        _remove(path)
        return JsonResponse({})
    return _download(path)


def _entries(path: str, *, hidden: set[str] | None = None, prefix: str = "") -> list[dict]:
    """The files and directories directly under `path`, sorted; `prefix` leads each entry's
    path (the run or model listings give paths from their root, the proxy bare names)."""
    try:
        directories, files = default_storage.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    directories = [name for name in directories if name not in (hidden or set())]
    entries = [{"path": prefix + name, "is_dir": True} for name in directories]
    for name in files:
        size = default_storage.size(f"{path}/{name}" if path else name)
        entries.append({"path": prefix + name, "is_dir": False, "file_size": size})
    return sorted(entries, key=lambda e: e["path"])


@mlflow_endpoint(["GET"])
def list_artifacts(request: HttpRequest) -> JsonResponse:
    """The files and directories directly under `?path=`; `{}` for a missing or empty
    directory, and for a file (which the client then treats as "not a directory")."""
    path = clean_path(Message.of(request).string("path"), allow_root=True)
    # The root holds one folder per experiment: only those the caller may read.
    hidden = access_for(request).hidden_experiment_ids() if not path else set()
    entries = _entries(path, hidden=hidden)
    return JsonResponse({"files": entries} if entries else {})


def _listing(root: str, root_uri: str, relative: str) -> JsonResponse:
    """ListArtifacts of a run or a logged model: entries under `root/relative`, their paths
    from `root`, and the root's URI."""
    relative = clean_path(relative, allow_root=True)
    base = f"{root}/{relative}" if relative else root
    entries = _entries(base, prefix=f"{relative}/" if relative else "")
    return JsonResponse({"root_uri": root_uri, **({"files": entries} if entries else {})})


@mlflow_endpoint(["GET"])
def list_run_artifacts(request: HttpRequest) -> JsonResponse:
    """ListArtifacts (`MlflowClient().list_artifacts(run_id)` on older clients, the UI)."""
    message = Message.of(request)
    run = ids.run(message.string("run_id", "run_uuid", required=True))
    root = run_artifact_path(run.experiment_id, run.run_id)
    return _listing(root, run_artifact_uri(run), message.string("path"))


@mlflow_endpoint(["GET"])
def list_model_artifacts(request: HttpRequest, model_id: str) -> JsonResponse:
    """ListLoggedModelArtifacts: a logged model's files (`artifact_directory_path` below)."""
    model = ids.logged_model(model_id)
    root = model_artifact_path(model.experiment_id, model.model_id)
    uri = model.artifact_location or model_artifact_uri(model.experiment_id, model.model_id)
    return _listing(root, uri, Message.of(request).string("artifact_directory_path"))


# --- What a local artifact store cannot do -------------------------------------------------
# MLflow's server answers these with the errors below when its artifacts are proxied or its
# repository is local, as Spyglass's are; the client falls back on the multipart message.

NOT_IMPLEMENTED = "NOT_IMPLEMENTED"


def _unsupported(what: str) -> MlflowError:
    return MlflowError(
        NOT_IMPLEMENTED, f"{what} is not supported for the current artifact repository", 501
    )


@mlflow_endpoint(["POST"])
def multipart_upload(request: HttpRequest, artifact_path: str) -> JsonResponse:
    """mpu/create, mpu/complete, mpu/abort."""
    clean_path(artifact_path)
    raise _unsupported("Multipart upload")


@mlflow_endpoint(["GET"])
def presigned_download(request: HttpRequest, artifact_path: str) -> JsonResponse:
    clean_path(artifact_path)
    raise _unsupported("Multipart download")


@mlflow_endpoint(["POST"])
def presigned_url(request: HttpRequest) -> JsonResponse:
    """artifacts/presigned-upload-url (a run's or a logged model's) and
    presigned-download-url (a run's): refused as MLflow refuses them for proxied storage."""
    message = Message.of(request)
    uploading = request.path.endswith("/presigned-upload-url")
    run_id = message.string("run_id")
    model_id = message.string("model_id") if uploading else ""
    if uploading and bool(run_id) == bool(model_id):
        raise invalid("Exactly one of run_id and model_id must be provided.")
    if not uploading and not run_id:
        raise invalid("Missing value for required parameter 'run_id'.")
    clean_path(message.string("path", required=True))
    if run_id:
        ids.run(run_id)
    else:
        ids.logged_model(model_id)
    what = "upload" if uploading else "download"
    raise invalid(
        f"Presigned {what} is not supported for proxied artifact storage (artifact URI scheme: "
        "mlflow-artifacts). This endpoint requires a direct cloud storage artifact URI."
    )
