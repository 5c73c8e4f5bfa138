"""Sessions for the bank members the policy may switch to, loaded ahead within a memory budget.

Loading an ONNX Runtime session takes milliseconds to seconds on a small board; the hot path must
not wait for it. The pool loads the most useful members up front, as long as their estimated
footprint fits ``budget_bytes``; any other member is loaded by a background thread when asked for
(evicting the least recently used idle sessions to make room; a switch target that still does
not fit is loaded all the same, since the policy needs it), and the switch happens once it is
ready. A member that fails to load (a file changed on disk, a corrupt model) is marked broken and
never chosen again; the running member keeps running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from agent.errors import ModelError
from agent.inference import Classifier, Engine, OrtEngine, SessionSettings, verified_bytes
from agent.manifest import Manifest, ModelEntry

log = logging.getLogger(__name__)

SESSION_OVERHEAD_BYTES = 256 * 1024


def footprint(entry: ModelEntry) -> int:
    """Estimated resident memory of a loaded session: ~3x the file (weights, the optimised graph
    and its buffers; measured 2-3.5x on the bank with onnxruntime 1.31) plus a fixed overhead."""
    return 3 * max(entry.file_bytes, 1) + SESSION_OVERHEAD_BYTES


Loader = Callable[[Path, ModelEntry], Classifier]

WARMUP_RUNS = 3

CLOSE_TIMEOUT_S = 10.0
"""How long :meth:`SessionPool.close` waits for background loads in flight (a load takes tens
of milliseconds on a PC, seconds on a small board)."""


EngineWrap = Callable[[Engine], Engine]
"""Wraps every engine the agent loads (the load experiment emulates a slower board with it)."""


def load_engine(
    path: Path, entry: ModelEntry, settings: SessionSettings, wrap: EngineWrap | None = None
) -> Engine:
    engine: Engine = OrtEngine(path, entry, settings)
    return wrap(engine) if wrap is not None else engine


def _warm(
    path: Path,
    entry: ModelEntry,
    settings: SessionSettings,
    perf: Callable[[], float],
    wrap: EngineWrap | None,
) -> Classifier:
    """Load a session and run it a few times: the first runs allocate buffers and are many
    times slower, which must not count as contention when the policy switches to it."""
    engine = load_engine(path, entry, settings, wrap)
    x = np.zeros(entry.input.shape, dtype=np.float32)
    for _ in range(WARMUP_RUNS):
        engine.run(x)
    return Classifier(entry, engine, perf)


class SessionPool:
    def __init__(
        self,
        manifest: Manifest,
        entries: Iterable[ModelEntry],
        settings: SessionSettings,
        perf: Callable[[], float],
        budget_bytes: int,
        loader: Loader | None = None,
        wrap: EngineWrap | None = None,
    ) -> None:
        self.manifest = manifest
        self.entries = {e.id: e for e in entries}
        self.budget_bytes = budget_bytes
        self._load = loader or (lambda path, entry: _warm(path, entry, settings, perf, wrap))
        self._loaded: OrderedDict[str, Classifier] = OrderedDict()
        self.broken: dict[str, str] = {}
        """Members that failed to load, with the reason."""
        self._pinned: set[str] = set()
        self._lock = threading.Lock()
        self._loading: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(footprint(self.entries[i]) for i in self._loaded)

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    def get(self, model_id: str) -> Classifier | None:
        """The ready session, or ``None`` when it is not loaded (yet)."""
        with self._lock:
            return self._touch(model_id)

    def _touch(self, model_id: str) -> Classifier | None:
        """The loaded session, marked most recently used (call under the lock)."""
        c = self._loaded.get(model_id)
        if c is not None:
            self._loaded.move_to_end(model_id)
        return c

    def check(self, model_id: str) -> str | None:
        """Why ``model_id`` cannot be used (marked broken, or its file is missing or not the
        manifest's), or ``None``. Reads and hashes the file of a member not loaded yet."""
        if model_id in self.broken:
            return self.broken[model_id]
        if self.get(model_id) is not None:
            return None
        entry = self.entries[model_id]
        try:
            verified_bytes(self.manifest.path_of(entry), entry)
        except ModelError as exc:
            self.broken[model_id] = str(exc)
            log.error("%s; it will not be used", exc)
            return str(exc)
        return None

    def pin(self, *model_ids: str) -> None:
        """Never evict these (the member that is running, and one a switch is ready for)."""
        with self._lock:
            self._pinned = set(model_ids)

    def get_pinned(self, model_id: str, *keep: str) -> Classifier | None:
        """The ready session of ``model_id``, pinned with ``keep`` in the same step (under the
        pool's lock, so no load can evict it between the look-up and the pin), or ``None`` when
        it is not loaded (the pins are left as they were then)."""
        with self._lock:
            c = self._touch(model_id)
            if c is not None:
                self._pinned = {model_id, *keep}
            return c

    def load_now(self, model_id: str) -> Classifier:
        """Load in the caller's thread (start-up). Raises :class:`ModelError`."""
        c = self.get(model_id)
        if c is not None:
            return c
        entry = self.entries[model_id]
        try:
            c = self._load(self.manifest.path_of(entry), entry)
        except ModelError as exc:
            self.broken[model_id] = str(exc)
            raise
        with self._lock:
            self._make_room(footprint(entry))
            self._loaded[model_id] = c
        return c

    def preload(self, order: Iterable[str]) -> list[str]:
        """Load members in ``order`` while they fit the budget; return the ids loaded. One that
        fails to load is marked broken and logged as a warning: the agent runs on without it
        (the member it runs, loaded with :meth:`load_now`, raises instead)."""
        done: list[str] = []
        for mid in order:
            if mid in self.broken:
                continue
            if self.get(mid) is not None:
                done.append(mid)
                continue
            if self.used_bytes + footprint(self.entries[mid]) > self.budget_bytes:
                continue
            try:
                self.load_now(mid)
            except ModelError as exc:
                log.warning("%s; it will not be used", exc)
                continue
            done.append(mid)
        return done

    def request(
        self,
        model_id: str,
        on_ready: Callable[[str], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
    ) -> None:
        """Load ``model_id`` in a background thread (no-op when loaded, loading or broken, and
        once the pool is closed)."""

        def work() -> None:
            try:
                self.load_now(model_id)
            except Exception as exc:  # ModelError, or anything a wrapped engine raises
                self.broken.setdefault(model_id, str(exc))
                log.error("%s; it will not be used", exc)
                with self._lock:
                    self._loading.discard(model_id)
                if on_failed is not None:
                    on_failed(model_id)
                return
            with self._lock:
                self._loading.discard(model_id)
            log.info("session for %s loaded in the background", model_id)
            if on_ready is not None:
                on_ready(model_id)

        with self._lock:
            if self._closed:
                log.info("session for %s not loaded: the pool is closed", model_id)
                return
            if model_id in self._loaded or model_id in self._loading or model_id in self.broken:
                return
            self._loading.add(model_id)
            # a daemon thread, so that a load stuck in a file read cannot hang the exit; close()
            # joins it (one still inside ONNX Runtime when the interpreter ends aborts it).
            # Started under the lock, so that close() sees every load it has not refused
            t = threading.Thread(target=work, name=f"har-load-{model_id}", daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
            t.start()

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> bool:
        """Refuse further background loads and wait up to ``timeout`` seconds in all for those
        in flight to end; return whether none is left running. A load thread still inside
        ONNX Runtime when the interpreter exits aborts the process (SIGABRT, exit 134), so the
        agent calls this when it stops. Loads in the caller's thread (:meth:`load_now`) still
        work afterwards. Idempotent."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        left = [t.name for t in threads if t.is_alive()]
        if left:
            log.warning(
                "%s still loading %.0f s after the stop; the exit may abort",
                ", ".join(left),
                timeout,
            )
        return not left

    def _make_room(self, need: int) -> None:
        """Evict least recently used unpinned sessions until ``need`` more bytes fit (lock held)."""
        used = sum(footprint(self.entries[i]) for i in self._loaded)
        for mid in list(self._loaded):
            if used + need <= self.budget_bytes:
                break
            if mid in self._pinned:
                continue
            used -= footprint(self.entries[mid])
            del self._loaded[mid]
            log.info("session for %s unloaded (memory budget)", mid)
