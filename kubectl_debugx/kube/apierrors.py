"""Error answers of the API server as typed errors: the one place that turns a status into an exception, and
a lost connection into Unreachable (for a request, an exec upgrade and a watch alike)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from kubectl_debugx.errors import DebugxError, Forbidden, NotFound, NotReady, Unauthorized, Unreachable, UsageError


class ApiError(DebugxError):
    """An error answer of the API server, kept with its Status so callers can refine the message.

    The client raises the subclass that matches the status, which is also the matching error of
    kubectl_debugx.errors (an ApiForbidden is a Forbidden): the exit code comes from that class, never from
    here. A status without a subclass stays a plain ApiError, an unexpected error."""

    def __init__(self, message: str, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def reason(self) -> str:
        return str(self.body.get("reason") or "")


class ApiBadRequest(ApiError, UsageError):
    """400 BadRequest and 422 Invalid: what we sent was refused as it is."""


class ApiUnauthorized(ApiError, Unauthorized):
    """401: the credentials were missing, expired or refused."""


class ApiForbidden(ApiError, Forbidden):
    """403: RBAC or an admission (Pod Security) refused."""


class ApiNotFound(ApiError, NotFound):
    """404: the object, or the API path itself, does not exist."""


class ApiConflict(ApiError, UsageError):
    """409: AlreadyExists or Conflict."""


class ApiServerError(ApiError, NotReady):
    """500, 502, 503 and 504: the server or what it proxies to cannot answer now."""


_API_ERRORS: dict[int, type[ApiError]] = {
    400: ApiBadRequest, 422: ApiBadRequest, 401: ApiUnauthorized, 403: ApiForbidden, 404: ApiNotFound, 409: ApiConflict,
    500: ApiServerError, 502: ApiServerError, 503: ApiServerError, 504: ApiServerError,
}


def _status_message(status: int, body: Mapping[str, Any], fallback: str) -> str:
    return str(body.get("message") or fallback or f"the server answered HTTP {status}").strip()


_NAMESPACED_PATH = re.compile(r"^/api(?:s/[^/]+)?/[^/]+/namespaces/([^/]+)/")
_NOT_FOUND_MESSAGE = re.compile(r'^[\w.-]+ "[^"]*" not found$')


def api_error(status: int, raw: bytes | str | None, path: str = "") -> ApiError:
    """Translate an error answer into the ApiError subclass of its status (the one place that does so).

    ``path`` is the request's path: the server's not-found message (``pods "web" not found``) does not say
    in which namespace it looked, so when the path names one it is added, kubectl's wording kept first."""
    try:
        body = json.loads(raw or b"{}")
        if not isinstance(body, dict):
            body = {"message": str(body)}
    except ValueError:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else (raw or "")
        body = {"message": text.strip()}
    message = _status_message(status, body, "")
    if status == 401:
        # kubectl's words; the server's own message is only "Unauthorized"
        message = f"you must be logged in to the server ({message or 'Unauthorized'})"
    namespaced = _NAMESPACED_PATH.match(path)
    if status == 404 and namespaced and _NOT_FOUND_MESSAGE.match(message):
        message += f' in namespace "{namespaced.group(1)}"'
    return _API_ERRORS.get(status, ApiError)(message, status, body)


def unreachable(host: str, error: BaseException | str, during: str = "") -> Unreachable:
    """A transport failure (urllib3, socket, TLS; or what went wrong, said) as the one line users see.
    `during` says what broke off when the failure came after the answer began (a watch, a body)."""
    if isinstance(error, str):
        text = error
    else:
        reason = getattr(error, "reason", None) or error  # MaxRetryError's cause; ssl.SSLError's short name
        args: tuple[Any, ...] = getattr(reason, "args", ())
        if len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], BaseException):
            # urllib3's ProtocolError("Connection broken: ...", cause): its str() is that tuple; the cause says it
            reason = args[1]
        text = str(reason).split(": ", 1)[-1] if ": " in str(reason) else str(reason)
    return Unreachable(f"cannot reach the API server at {host}: " + (f"{during} ({text})" if during else text))
