"""How every failure becomes the one JSON error shape (see :mod:`deepstrata.serve.errors`):
FastAPI's validation errors, Starlette's 404/405, our own :class:`ApiError` and a
preprocessor's DataError, with the fields named as ``records[0].age``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from deepstrata.errors import DataError
from deepstrata.serve.errors import ApiError, code_for_status, error_body


def install_error_handlers(app: FastAPI) -> None:
    """Every error of ``app`` answered as JSON (no plain text, no traceback)."""

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, error: ApiError) -> Response:
        return error_response(request, error)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, error: RequestValidationError) -> Response:
        return error_response(request, invalid(error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException) -> Response:
        message = {404: "no such endpoint", 405: "method not allowed on this endpoint"}.get(
            error.status_code, str(error.detail)
        )
        return error_response(
            request,
            ApiError(
                code_for_status(error.status_code),
                message,
                status=error.status_code,
                headers=dict(error.headers or {}),
            ),
        )


def error_response(request: Request, error: ApiError) -> Response:
    request_id = getattr(request.state, "request_id", None)
    return Response(
        error_body(error.code, error.message, request_id, error.details),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers,
    )


def invalid(errors: list[dict]) -> ApiError:
    """pydantic's errors -> 422 naming each field as ``records[0].age``; a list longer than
    the limit -> 413."""
    for error in errors:
        if error["type"] == "too_long" and tuple(error["loc"][-1:]) == ("records",):
            limit = error.get("ctx", {}).get("max_length")
            return ApiError(
                "batch_too_large",
                f"at most {limit} records per request; split the request",
            )
    details = [
        {"field": field_path(error["loc"]), "message": error["msg"], "type": error["type"]}
        for error in errors[:100]
    ]
    first = details[0]
    where = f"{first['field']}: " if first["field"] else ""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ApiError("invalid_input", f"{where}{first['message']}{more}", details=details)


def field_path(loc) -> str:
    """``("body", "records", 0, "age")`` -> ``records[0].age``."""
    text = ""
    for part in loc:
        if part == "body" and not text:
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def data_message(error: DataError) -> str:
    """A DataError's message for a client: the field, never a file name or a path. (Its row
    is the request's own: a failed batch is run again request by request.)"""
    if error.column and error.row:
        return f"records[{error.row - 1}].{error.column}: {error.message}"
    where = f"column {error.column!r}: " if error.column else ""
    return f"{where}{error.message}"
