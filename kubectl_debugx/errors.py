"""The errors users may see, and the exit code each one maps to (documented in README).

The class is the mapping: an error's exit code is its class's `code` (kube.client's API errors are also these
classes, e.g. an ApiForbidden is a Forbidden). cli.main is the only place that turns an exception into that
code and its `error:` line."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # unexpected failure (a bug): run again with -v for the traceback
    USAGE = 2  # bad flag, value or file given by the user
    NOT_FOUND = 3  # pod, namespace, container, node or process does not exist
    FORBIDDEN = 4  # RBAC or Pod Security refused, or preflight says it would
    NOT_READY = 5  # pod not running, image cannot be pulled, deadline passed, feature disabled
    REMOTE_FAILED = 6  # the remote tool failed (invalid filter, attach refused, stream cut)
    UNREACHABLE = 7  # the API server cannot be reached
    OUTPUT = 8  # the local output exists or cannot be written
    PARTIAL = 9  # several pods: some failed (named on stderr and in the summary), the others' results are kept
    UNAUTHORIZED = 10  # the credentials were refused (401) or could not be had (an exec plugin failed)
    INTERRUPTED = 130  # Ctrl-C (SIGINT); the work done so far is kept
    TERMINATED = 143  # SIGTERM; the work done so far is kept


class DebugxError(Exception):
    """An error with a one-line message meant for the user."""

    code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, code: ExitCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UsageError(DebugxError):
    code = ExitCode.USAGE


class NotFound(DebugxError):
    code = ExitCode.NOT_FOUND


class Forbidden(DebugxError):
    code = ExitCode.FORBIDDEN


class NotReady(DebugxError):
    code = ExitCode.NOT_READY


class RemoteFailed(DebugxError):
    code = ExitCode.REMOTE_FAILED


class Unreachable(DebugxError):
    code = ExitCode.UNREACHABLE


class Unauthorized(DebugxError):
    """Not authenticated: the API server answered 401, or the kubeconfig's exec credential plugin failed (its
    own message and exit code said). Logging in again is the fix, not RBAC: hence not Forbidden's code."""

    code = ExitCode.UNAUTHORIZED


class OutputError(DebugxError):
    code = ExitCode.OUTPUT


class Interrupted(DebugxError):
    """Raised after a clean stop caused by a signal, so the exit code tells which one."""

    code = ExitCode.INTERRUPTED


class UnsafeMemberError(RemoteFailed):
    """A tar member from a node or a pod that would be written outside the output directory, or through or over
    something that is not ours to replace (formats/safetree.py)."""

    def __init__(self, member: str, reason: str, origin: str) -> None:
        super().__init__(f"refusing tar member {member!r} from {origin}: {reason}")
        self.member = member
        self.reason = reason


class ArchiveError(RemoteFailed):
    """A tar stream from a node or a pod is damaged or cut short."""
