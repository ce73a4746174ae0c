"""Artifact files served as downloads, never as pages of this site.

Artifacts are whatever a client uploaded: an `.html` or `.js` served inline with its own type
would run as a same-origin page or script, with the viewer's session. Every artifact is an
attachment, typed `application/octet-stream` unless its type is known to be inert, with
nosniff (browsers must not guess a script out of it) and a sandboxing CSP as a last wall.
"""

from __future__ import annotations

import mimetypes
import posixpath
from typing import IO

from django.http import FileResponse

# Types a browser never runs: shown or saved as they are. SVG is an image that runs scripts.
SAFE_TYPES = {
    "application/json",
    "application/pdf",
    "text/plain",
    "text/csv",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
}


def content_type_for(name: str) -> str:
    guessed, encoding = mimetypes.guess_type(name)
    if guessed in SAFE_TYPES and encoding is None:
        return guessed
    return "application/octet-stream"


def download(handle: IO[bytes], path: str) -> FileResponse:
    name = posixpath.basename(path)
    response = FileResponse(
        handle, as_attachment=True, filename=name, content_type=content_type_for(name)
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response
