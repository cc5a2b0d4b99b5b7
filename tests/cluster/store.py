"""The API server's object store: the single source of truth for every API object.

Everything here runs on the API server's event loop thread (the kubelet reaches it only through
`loop.call_soon_threadsafe`), so no locking is needed. Objects are plain JSON dicts in the exact wire
shape. Every write takes the next value of one global resourceVersion counter, like etcd's revision, and is
appended to a bounded history so that watches started from an older resourceVersion replay what they missed.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

HISTORY_LIMIT = 5000


def now_rfc3339(delta_seconds: float = 0) -> str:
    t = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=delta_seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An error answered as a metav1 Status (or, with content_type text/plain, as raw text)."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict | None = None,
        content_type: str = "application/json",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.content_type = content_type

    def status(self) -> dict:
        body: dict = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": self.message}
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    details = {"name": name, "kind": resource}
    if group:
        details = {"name": name, "group": group, "kind": resource}
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(404, "NotFound", f'{qualified} "{name}" not found', details)


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    details = {"name": name, "kind": resource} if not group else {"name": name, "group": group,
                                                                   "kind": resource}
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(409, "AlreadyExists", f'{qualified} "{name}" already exists', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


@dataclass(eq=False)  # identity semantics: watchers live in a set
class Watcher:
    resource: str
    namespace: str | None
    predicate: Callable[[dict], bool]
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)


@dataclass(frozen=True)
class Event:
    rv: int
    type: str
    resource: str
    namespace: str | None
    obj: dict
    old: dict | None = None  # the previous state of a MODIFIED object (for selector transitions)


class Store:
    def __init__(self, first_rv: int = 100) -> None:
        self._rv = first_rv
        # (resource, namespace or "", name) -> object
        self._objects: dict[tuple[str, str, str], dict] = {}
        self._history: deque[Event] = deque(maxlen=HISTORY_LIMIT)
        self._watchers: set[Watcher] = set()

    # -- resourceVersion ---------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def oldest_replayable_rv(self) -> int:
        return self._history[0].rv - 1 if len(self._history) == self._history.maxlen else 0

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    # -- reads -------------------------------------------------------------------------------------
    def get(self, resource: str, namespace: str | None, name: str) -> dict | None:
        return self._objects.get((resource, namespace or "", name))

    def list(self, resource: str, namespace: str | None = None) -> list[dict]:
        items = [
            o for (r, ns, _), o in self._objects.items()
            if r == resource and (namespace is None or ns == namespace)
        ]
        return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    # -- writes ------------------------------------------------------------------------------------
    def create(self, resource: str, namespace: str | None, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = self._next_rv()
        meta["creationTimestamp"] = now_rfc3339()
        self._objects[(resource, namespace or "", meta["name"])] = obj
        self._emit("ADDED", resource, namespace, obj)
        return obj

    def update(self, resource: str, namespace: str | None, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        key = (resource, namespace or "", obj["metadata"]["name"])
        old = self._objects.get(key)
        self._objects[key] = obj
        self._emit("MODIFIED", resource, namespace, obj, old)
        return obj

    def delete(self, resource: str, namespace: str | None, name: str) -> dict | None:
        obj = self._objects.pop((resource, namespace or "", name), None)
        if obj is None:
            return None
        # The DELETED event carries the last state with a fresh resourceVersion, as etcd's delete does.
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._emit("DELETED", resource, namespace, obj)
        return obj

    # -- watch -------------------------------------------------------------------------------------
    def _emit(self, type_: str, resource: str, namespace: str | None, obj: dict, old: dict | None = None) -> None:
        ev = Event(int(obj["metadata"]["resourceVersion"]), type_, resource, namespace, obj, old)
        self._history.append(ev)
        for w in list(self._watchers):
            seen = self._as_seen(w, ev)
            if seen is not None:
                w.queue.put_nowait(seen)

    @staticmethod
    def _as_seen(w: Watcher, ev: Event) -> Event | None:
        """The event as a watcher with a selector sees it: an object that starts (stops) matching is ADDED
        (DELETED) for it, as the real watch cache does; None when it does not concern the watcher."""
        if ev.resource != w.resource:
            return None
        if w.namespace is not None and (ev.namespace or "") != w.namespace:
            return None
        now = w.predicate(ev.obj)
        if ev.type != "MODIFIED" or ev.old is None:
            return ev if now else None
        before = w.predicate(ev.old)
        if now and before:
            return ev
        if now:
            return Event(ev.rv, "ADDED", ev.resource, ev.namespace, ev.obj)
        if before:
            return Event(ev.rv, "DELETED", ev.resource, ev.namespace, ev.obj)
        return None

    def watch(self, resource: str, namespace: str | None, predicate: Callable[[dict], bool],
              since_rv: int | None) -> Watcher:
        """Register a watcher. since_rv None: start with ADDED for every current object (rv "" or "0")."""
        w = Watcher(resource, namespace, predicate)
        if since_rv is None:
            for obj in self.list(resource, namespace):
                ev = Event(int(obj["metadata"]["resourceVersion"]), "ADDED", resource,
                           obj["metadata"].get("namespace"), obj)
                seen = self._as_seen(w, ev)
                if seen is not None:
                    w.queue.put_nowait(seen)
        else:
            for ev in self._history:
                seen = self._as_seen(w, ev) if ev.rv > since_rv else None
                if seen is not None:
                    w.queue.put_nowait(seen)
        self._watchers.add(w)
        return w

    def unwatch(self, w: Watcher) -> None:
        self._watchers.discard(w)

    def close_watchers(self) -> None:
        for w in list(self._watchers):
            w.queue.put_nowait(None)
