"""What the server says about itself: `/api/3.0/mlflow/server-info` and `/health`.

server-info tells the client which optional mechanisms exist. Spyglass has none of them:
uploads and downloads go through the plain artifact proxy (no multipart, no presigned URLs),
and there are no workspaces or trace archival. Saying so explicitly (rather than a 404) spares
the client its fallback probe of `/server-features`.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

SERVER_INFO = {
    "store_type": "SqlStore",
    "workspaces_enabled": False,
    "trace_archival_enabled": False,
    "multipart_uploads_enabled": False,
    "multipart_downloads_enabled": False,
    "presigned_upload_run_id_supported": False,
    "presigned_upload_model_id_supported": False,
    "features_enabled": {},
}


@require_safe
def server_info(request: HttpRequest) -> JsonResponse:
    return JsonResponse(SERVER_INFO)


@require_safe
def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("OK", content_type="text/plain")
