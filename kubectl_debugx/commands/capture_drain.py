"""When a stopping capture may send tcpdump its SIGINT: once every pod's tcpdump has handed over what it
captured before the stop request.

Why not a fixed wait: libpcap (TPACKET_V3, capture.py) hands packets over in blocks, a block when it is full or
when its 1 s timer fires, and tcpdump ends on SIGINT without reading the blocks it has not been handed. A fixed
2.2 s after the request was enough on an idle machine; with the suite on 4 workers on 2 cores, the newest ring
file ended at request 1,485 of 1,500 (tests/e2e/test_capture_ring.py): tcpdump, starved of CPU, had not read
the last block 2.2 s after the request.

The proof that nothing captured before the request is still held: a packet stamped after the request, by the
node's clock (read by `date` in the debug container as the stop begins; the client's clock may be seconds
off). The kernel hands blocks over in order, so every packet before it has come. A pod with no traffic after
the request gives no such proof: then the old wait (STOP_GRACE) and nothing more from its tcpdump for QUIET_S
(a block holding packets is handed over within one timer period by a tcpdump that runs). Never longer than
MAX_S; a second Ctrl-C ends the wait at once (remote/streamrun.py).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubectl_debugx.errors import DebugxError
from kubectl_debugx.formats.pcap import PcapScanner
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.remote import process
from kubectl_debugx.remote.ephemeral import Target

# A block waits for one timer period, two when it opened between two ticks of the kernel's retire timer: 2 s,
# plus a margin (measured: a request just before SIGINT left "0 captured, 24 received, 0 dropped").
STOP_GRACE = 2.2
QUIET_S = 1.2
MAX_S = 10.0


@dataclass
class DrainPoint:
    """One pod's tcpdump as the stop sees it."""

    target: Target
    ec: str
    scanner: PcapScanner  # its pcap stream: the newest record's seconds
    last_data: float = field(init=False)  # when its stream last brought bytes (or the capture began)
    mark: int | None = None  # node seconds from which a packet proves the rest came (None: not known yet)
    ended: bool = False

    def __post_init__(self) -> None:
        self.last_data = time.monotonic()

    def fed(self) -> None:
        self.last_data = time.monotonic()

    def drained(self, waited: float, now: float) -> bool:
        if self.ended or (self.mark is not None and self.scanner.last_sec >= self.mark):
            return True
        return waited >= STOP_GRACE and now - self.last_data >= QUIET_S


class PacketDrain:
    """The capture's streamrun.Grace: over when every pod's tcpdump is drained (DrainPoint.drained)."""

    note = "Stopping: collecting the packets tcpdump still holds (Ctrl-C again to stop now)"

    def __init__(self, kube: KubeApi, points: Callable[[], list[DrainPoint]]) -> None:
        self.kube = kube
        self.points = points

    def begin(self) -> None:
        for point in self.points():
            threading.Thread(target=self._mark, args=(point,), daemon=True).start()

    def _mark(self, point: DrainPoint) -> None:
        # An image without date, the pod gone: no mark, the quiet rule decides.
        with contextlib.suppress(DebugxError):
            # The second after the node's "now": every packet stamped in it was captured after the request.
            point.mark = process.node_seconds(self.kube, point.target, point.ec) + 1

    def over(self, waited: float) -> bool:
        now = time.monotonic()
        return waited >= MAX_S or all(point.drained(waited, now) for point in self.points())
