""":func:`agent.cli_common.stop_on_signals` off the main thread (where ``signal.signal`` raises
ValueError) fails at once and leaves no thread behind waiting for a signal that cannot come."""

from __future__ import annotations

import signal
import threading

from agent.cli_common import STOP_SIGNALS, stop_on_signals


def _reporters() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "har-stop-signals"]


def test_off_the_main_thread_it_raises_and_leaves_no_waiting_thread() -> None:
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    already = _reporters()
    errors: list[BaseException] = []

    def enter() -> None:
        try:
            with stop_on_signals():
                pass
        except ValueError as exc:
            errors.append(exc)

    worker = threading.Thread(target=enter)
    worker.start()
    worker.join(10)
    assert not worker.is_alive()
    assert len(errors) == 1, errors
    left = [t for t in _reporters() if t not in already and t.is_alive()]
    assert left == [], "the signal-reporting thread waits forever"
    assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before
