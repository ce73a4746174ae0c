"""MLflow's error contract: a JSON body with `error_code` and `message`, and a status the client
does not retry.

The mlflow client reads the code from the body, not from the status, and retries 408, 429 and
5xx for minutes (mlflow-protocol.md §1). So every expected failure (bad input, unknown id,
oversized body) answers 4xx JSON here; a 5xx means a bug.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from tracking.filters import FilterError
from tracking.ingest import IngestError

INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"
RESOURCE_LIMIT_EXCEEDED = "RESOURCE_LIMIT_EXCEEDED"


class MlflowError(Exception):
    """An expected failure, answered as MLflow error JSON."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def invalid(message: str) -> MlflowError:
    return MlflowError(INVALID_PARAMETER_VALUE, message, 400)


def not_found(message: str) -> MlflowError:
    return MlflowError(RESOURCE_DOES_NOT_EXIST, message, 404)


def already_exists(message: str) -> MlflowError:
    return MlflowError(RESOURCE_ALREADY_EXISTS, message, 400)


def too_large(message: str) -> MlflowError:
    return MlflowError(RESOURCE_LIMIT_EXCEEDED, message, 413)


def error_response(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error_code": code, "message": message}, status=status)


def mlflow_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer the failures a client can cause as MLflow error JSON instead of Django's pages."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except MlflowError as error:
            return error_response(error.code, error.message, error.status)
        except (IngestError, FilterError) as error:
            return error_response(INVALID_PARAMETER_VALUE, error.message, 400)
        except RequestDataTooBig:
            # Raised by `request.body` past DATA_UPLOAD_MAX_MEMORY_SIZE; 413 is not retried.
            return error_response(
                RESOURCE_LIMIT_EXCEEDED, "The request body is larger than this server accepts.", 413
            )
        except TooManyFieldsSent:
            # A query string past DATA_UPLOAD_MAX_NUMBER_FIELDS: Django's own answer is an
            # HTML page, which the client cannot read.
            return error_response(
                INVALID_PARAMETER_VALUE,
                "The request holds more parameters than this server accepts.",
                400,
            )
        except UnreadablePostError:
            return error_response(INVALID_PARAMETER_VALUE, "The request body was cut short.", 400)

    return wrapper


def mlflow_endpoint(
    methods: list[str],
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """What every MLflow view is: CSRF-exempt (clients send no token; auth is by header),
    limited to `methods`, allowed to the caller by its rule in permissions.RULES, and
    answering client-caused failures as MLflow error JSON."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        return csrf_exempt(require_http_methods(methods)(mlflow_errors(permitted(view))))

    return decorate


def permitted(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Run the endpoint's permission rule (keyed by URL name) before the view."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Imported here: the rules locate objects through ids.py, which imports this module.
        from tracking.mlflow_api.permissions import check

        check(request, kwargs)
        return view(request, *args, **kwargs)

    return wrapper


def endpoint_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Unknown paths under the MLflow prefixes. The client falls back to older APIs on this
    code (e.g. StartTraceV3 -> V2), and reports it clearly for anything else."""
    message = f"{request.method} {request.path} is not an endpoint of this server."
    return error_response(ENDPOINT_NOT_FOUND, message, 404)
