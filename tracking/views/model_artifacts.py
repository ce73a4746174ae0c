"""A model version's artifacts: browse its folder on the storage, read the files people look
at (MLmodel, code, config, input example) and download any of them.

Paths come from the query string and are checked segment by segment before storage sees them:
a page can only ever read below the version's own artifact folder.
"""

from __future__ import annotations

import contextlib
import json
import posixpath

import yaml
from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from tracking import downloads
from tracking.models import LoggedModel
from tracking.permissions import page_reads
from tracking.storage import ARTIFACT_SCHEME, model_artifact_path

PREVIEW_BYTES = 256 * 1024


def artifact_root(model: LoggedModel) -> str:
    """The storage folder of a version's artifacts (where log_model uploaded them)."""
    location = model.artifact_location
    if location.startswith(ARTIFACT_SCHEME):
        return relative_path(location.removeprefix(ARTIFACT_SCHEME))
    return model_artifact_path(model.experiment_id, model.model_id)


def relative_path(raw: str) -> str:
    """A clean relative path below the root, or a 404 for anything that could leave it."""
    path = raw.strip("/")
    if not path:
        return ""
    segments = path.split("/")
    if "\\" in path or any(c < " " for c in path) or any(s in ("", ".", "..") for s in segments):
        raise Http404("No such artifact.")
    return path


def _listing(folder: str) -> tuple[list[str], list[tuple[str, int]]] | None:
    try:
        directories, files = default_storage.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return None
    sized = [(name, default_storage.size(f"{folder}/{name}")) for name in sorted(files)]
    return sorted(directories), sized


def _readable(name: str, data: bytes) -> dict:
    """What a file looks like on the page: text, pretty JSON, or MLmodel's parts."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return {"binary": True}
    view: dict = {"text": text}
    if name.endswith(".json"):
        with contextlib.suppress(ValueError):  # not JSON after all: shown as it is
            view["text"] = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    if name == "MLmodel":
        try:
            mlmodel = yaml.safe_load(text)
        except yaml.YAMLError:
            mlmodel = None
        if isinstance(mlmodel, dict):
            view["mlmodel"] = _mlmodel(mlmodel)
    return view


def _mlmodel(mlmodel: dict) -> dict:
    """Flavors and the signature's inputs/outputs (which MLmodel stores as JSON strings)."""
    signature = mlmodel.get("signature") if isinstance(mlmodel.get("signature"), dict) else {}
    parts = {}
    for part in ("inputs", "outputs", "params"):
        raw = signature.get(part)
        try:
            parsed = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            parsed = raw
        if parsed:
            parts[part] = json.dumps(parsed, indent=2, ensure_ascii=False)
    flavors = mlmodel.get("flavors")
    return {
        "flavors": sorted(flavors) if isinstance(flavors, dict) else [],
        "signature": parts,
        "facts": [
            (key, mlmodel[key])
            for key in ("model_id", "mlflow_version", "utc_time_created", "model_size_bytes")
            if key in mlmodel
        ],
    }


@page_reads("model", "model_id")
@require_safe
def model_artifacts(request: HttpRequest, model_id: str) -> HttpResponse:
    # Numbered, as on the other tabs: the header shows "/ v2" and the version badge.
    model = get_object_or_404(LoggedModel.objects.numbered(), model_id=model_id)
    root = artifact_root(model)
    path = relative_path(request.GET.get("path", ""))
    full = f"{root}/{path}" if path else root
    context = {"model": model, "tab": "artifacts", "path": path, "file": None, "listing": None}
    context["crumbs"] = _crumbs(path)
    listing = _listing(full)
    if not path:  # the root; a version logged without files has none
        context["listing"] = listing or ([], [])
    elif listing is not None and (listing[0] or listing[1]):
        context["listing"] = listing
    elif default_storage.exists(full):
        with default_storage.open(full, "rb") as handle:
            data = handle.read(PREVIEW_BYTES + 1)
        name = posixpath.basename(path)
        context["file"] = {
            "name": name,
            "size": default_storage.size(full),
            "truncated": len(data) > PREVIEW_BYTES,
            **_readable(name, data[:PREVIEW_BYTES]),
        }
    else:
        raise Http404("No such artifact.")
    return render(request, "tracking/model_artifacts.html", context)


def _crumbs(path: str) -> list[tuple[str, str]]:
    """(name, path) of each folder on the way to `path`, for the breadcrumb links."""
    segments = path.split("/") if path else []
    return [(name, "/".join(segments[: i + 1])) for i, name in enumerate(segments)]


@page_reads("model", "model_id")
@require_safe
def model_artifact_download(request: HttpRequest, model_id: str) -> HttpResponse:
    model = get_object_or_404(LoggedModel, model_id=model_id)
    path = relative_path(request.GET.get("path", ""))
    if not path:
        raise Http404("No such artifact.")
    try:
        handle = default_storage.open(f"{artifact_root(model)}/{path}", "rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        raise Http404("No such artifact.") from None
    return downloads.download(handle, path)
