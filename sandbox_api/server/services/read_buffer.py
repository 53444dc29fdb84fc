"""Read events waiting to be chained: the batching behind the access trace (docs/governance.md).

Every authenticated read is an audit event, but a read changes nothing else, so it need not cost the
request a write transaction of its own. A read is appended here (a lock and a list append) and a
background thread chains the waiting events through the audit log's ordinary ``append``, in the order
they arrived, at most ``window_s`` later or as soon as ``max_events`` are waiting; any synchronous
audit record chains them first too, so nothing an auditor reads is older than the reads before it.

What a crash can lose: the events still waiting here, that is at most the last window's reads. A write
that fails puts its events back at the front, so a failing database delays events but never reorders
or drops them while the process lives.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

LOG = logging.getLogger(__name__)

# After this many failed flushes in a row the thread stops retrying; the next read (or any synchronous
# audit record, or shutdown) tries again. The events stay waiting either way.
MAX_FAILED_FLUSHES = 5


def safe_details(details: Mapping[str, object]) -> dict[str, object]:
    """``details`` as plain JSON data that the chain can always encode.

    A read's details come from the request (ids, filters, a dry run's scope name): text that is not
    valid Unicode (a lone surrogate such as ``\\ud800``) or a float that JSON cannot hold would make the
    batch that carries it fail to chain, and every batch after it, since a failed batch is put back.
    Such text is kept with the offending code points escaped (``\\ud800``), so the evidence survives.

    >>> safe_details({"scope": "\\ud800x", "n": float("nan"), "ids": ("a", 1)})
    {'scope': '\\\\ud800x', 'n': 'nan', 'ids': ['a', 1]}
    """
    return {safe_text(str(k)): _safe(v) for k, v in details.items()}


def safe_text(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _safe(value: object) -> object:
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return safe_details(value)
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    return safe_text(str(value))


@dataclass(frozen=True)
class PendingRead:
    event: str
    actor: str
    details: Mapping[str, object]


class ReadBuffer:
    """A per-process queue of read events, flushed by a short-lived background thread."""

    def __init__(self, *, flush: Callable[[], object], window_s: float, max_events: int) -> None:
        self._flush = flush
        self.window_s = window_s
        self.max_events = max_events
        self._items: list[PendingRead] = []
        self._lock = threading.Lock()  # guards _items and _thread
        self._flush_lock = threading.Lock()  # one flush at a time, so batches chain in arrival order
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, item: PendingRead) -> None:
        with self._lock:
            self._items.append(item)
            full = len(self._items) >= self.max_events
            if self._thread is None:
                # Started on demand and gone once idle: a quiet process (or a test) holds no thread.
                self._thread = threading.Thread(target=self._run, name="audit-read-trace", daemon=True)
                self._thread.start()
        if full:
            self._wake.set()

    def waiting(self) -> int:
        with self._lock:
            return len(self._items)

    @contextmanager
    def taking(self) -> Iterator[list[PendingRead]]:
        """The waiting events, for the caller to chain; put back at the front if the caller fails."""
        with self._flush_lock:
            with self._lock:
                items, self._items = self._items, []
            try:
                yield items
            except BaseException:
                with self._lock:
                    self._items[:0] = items
                raise

    def _run(self) -> None:
        failures = 0
        while True:
            self._wake.wait(self.window_s)
            self._wake.clear()
            try:
                self._flush()
                failures = 0
            except Exception:
                failures += 1
                LOG.exception("audit read trace: %s events could not be chained yet", self.waiting())
            with self._lock:
                if not self._items or failures >= MAX_FAILED_FLUSHES:
                    self._thread = None
                    return
