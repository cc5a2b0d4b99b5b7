"""Adding (or reusing) the debug containers of N >= 1 pods and waiting until they run: one path for one pod and
many, so that what stays is said for every pod on every way out.

Ephemeral containers can never be removed. Once a container is in a pod's spec, the run says so:
- before every container runs (an interrupt, an image that cannot be pulled, a pod deleted meanwhile) in the one
  error line, after the reason (`interrupted; ephemeral container X stays in pod P ...`), for every pod whose
  container was added; a patch that was on its way when the signal came is looked up (the API server may have
  applied it);
- once they all run, through Talk.leave: one `Left in the cluster:` line per pod as the run ends, whatever ends it.

The calls of several pods go out SETUP_WORKERS at a time on daemon threads (each is a round trip of its own: one
after the other they would put N round trips before the last pod's first packet). The main thread alone takes
the signals: on one it stops waiting for the waits (a daemon thread never holds the process), but lets the
patches in flight finish, each bounded by the request timeout, so that it knows what was added.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from kubectl_debugx.errors import DebugxError, ExitCode, Interrupted, NotFound
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.remote import ephemeral
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.session import Candidate, min_life, seconds_left, stays_line, ttl_of
from kubectl_debugx.remote.streamrun import StopRequested, stop_signals_raise
from kubectl_debugx.talk import Talk

SETUP_WORKERS = 8
T = TypeVar("T")
R = TypeVar("R")


def each(fn: Callable[[T], R], items: Sequence[T], finish_on_stop: bool = False) -> list[R]:
    """fn over items, SETUP_WORKERS at a time on daemon threads, results in order; the first error (in order)
    is raised once all ended. A signal (KeyboardInterrupt/StopRequested in the calling thread) is raised at
    once, after the calls already running have ended when `finish_on_stop` (none starts after it)."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    results: list[Any] = [None] * len(items)
    errors: list[BaseException | None] = [None] * len(items)
    slots = threading.Semaphore(SETUP_WORKERS)
    stopping = threading.Event()

    def run(i: int) -> None:
        try:
            if not stopping.is_set():
                results[i] = fn(items[i])
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            errors[i] = e
        finally:
            slots.release()

    threads = []
    try:
        for i in range(len(items)):
            slots.acquire()
            thread = threading.Thread(target=run, args=(i,), name="debugx-setup", daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
    except BaseException:
        stopping.set()
        if finish_on_stop:
            for thread in threads:
                thread.join()
        raise
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return results


def say_profiles(talk: Talk, chosen: Iterable[Candidate], extra_notes: Iterable[str] = ()) -> None:
    said: set[str] = set()
    notes = list(extra_notes)
    for candidate in chosen:
        if candidate.profile not in said:
            said.add(candidate.profile)
            talk.say(f"Using profile {candidate.profile}")
        notes = [*candidate.notes, *notes]
    for note in dict.fromkeys(notes):
        talk.say(f"Note: {note}")


def start(kube: KubeApi, target: Target, chosen: Candidate, duration: float | None, talk: Talk,
          extra_notes: Iterable[str] = ()) -> str:
    """start_all of one pod."""
    return start_all(kube, [target], [chosen], duration, talk, extra_notes)[0]


def start_all(kube: KubeApi, pods: Sequence[Target], chosen: Sequence[Candidate], duration: float | None,
              talk: Talk, extra_notes: Iterable[str] = ()) -> list[str]:
    """Say the profiles, add every debug container (or reuse one), then wait until all run: they start in
    parallel, so the last pod is ready about as soon as one pod alone would be. Returns their names."""
    say_profiles(talk, chosen, extra_notes)
    asked = [False] * len(pods)
    added: list[tuple[str, dict[str, Any] | None] | None] = [None] * len(pods)

    def add(i: int) -> None:
        asked[i] = True
        added[i] = ephemeral.add_or_reuse(kube, pods[i], chosen[i].container, min_life(duration), talk.say)

    def wait(i: int) -> None:
        name, patched = added[i] or ("", None)
        if patched is not None:
            ephemeral.wait_running(kube, pods[i].namespace, patched, name, str(chosen[i].container["image"]))

    indexes = list(range(len(pods)))
    try:
        with stop_signals_raise():  # Ctrl-C or SIGTERM while adding or waiting (an image that cannot be pulled)
            each(add, indexes, finish_on_stop=True)
            each(wait, indexes)
    except (KeyboardInterrupt, StopRequested) as e:
        code = e.exit_code if isinstance(e, StopRequested) else ExitCode.INTERRUPTED
        word = "terminated" if code == ExitCode.TERMINATED else "interrupted"
        stays = _stays(kube, pods, chosen, asked, added, look_up=True)
        raise Interrupted("; ".join([word, *stays]), code) from None
    except NotFound as e:
        # the pod is gone, and its container with it; the other pods' stay (a pod deleted meanwhile says it)
        stays = [s for s in _stays(kube, pods, chosen, asked, added, look_up=False) if len(pods) > 1]
        if not stays:
            raise
        raise NotFound("; ".join([str(e), *stays])) from None
    except DebugxError as e:
        stays = _stays(kube, pods, chosen, asked, added, look_up=False)
        if not stays:
            raise  # refused: nothing was added
        raise DebugxError("; ".join([str(e), *stays]), e.code) from None
    now = time.time()
    names = []
    for target, candidate, entry in zip(pods, chosen, added, strict=True):
        name, patched = entry or ("", None)
        left = seconds_left(target.pod, name, now) if patched is None else None  # reused: the pod has it running
        talk.leave(stays_line(name, target.pod_name, left if left is not None else ttl_of(candidate.container), now))
        names.append(name)
    return names


def _stays(kube: KubeApi, pods: Sequence[Target], chosen: Sequence[Candidate], asked: list[bool],
           added: list[tuple[str, dict[str, Any] | None] | None], look_up: bool) -> list[str]:
    """What stays of a start that did not finish: every container added (a reused one was there before and is
    not ours to announce), and with `look_up` one whose patch was on its way (the API server may have applied
    it)."""
    out = []
    for target, candidate, was_asked, entry in zip(pods, chosen, asked, added, strict=True):
        name = str(candidate.container["name"])
        stays = (f"ephemeral container {name} stays in pod {target.pod_name} (ephemeral containers cannot be "
                 "removed); no tool runs in it, and it sleeps at most until its TTL if it ever starts")
        if entry is not None:
            if entry[1] is not None:
                out.append(stays)
        elif was_asked and look_up:
            found = ephemeral.added_after_all(kube, target, name, stays)
            if found:
                out.append(found)
    return out
