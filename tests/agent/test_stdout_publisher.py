"""StdoutPublisher on a stream with a binary layer (standard output): the payload's bytes go
straight to it, unpaced lines are gathered and written in batches, and every byte arrives even
when the binary layer is an unbuffered raw file (``PYTHONUNBUFFERED``) taking a few at a time."""

import io
import os
import subprocess
import sys

from agent.publishers import StdoutPublisher

from .helpers import RECORDINGS


class _Trickle(io.RawIOBase):
    """A raw, unbuffered binary file that takes at most 7 bytes a call and counts its calls."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.calls = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.calls += 1
        part = bytes(b[:7])
        self.data += part
        return len(part)


def _stdout_like(raw: io.RawIOBase) -> io.TextIOWrapper:
    """What ``python -u`` makes standard output: text written through to an unbuffered raw."""
    return io.TextIOWrapper(raw, encoding="utf-8", write_through=True)  # type: ignore[arg-type]


def test_unpaced_lines_are_gathered_then_all_written_in_order() -> None:
    raw = _Trickle()
    out = _stdout_like(raw)
    out.write("before\n")
    pub = StdoutPublisher(out, flush_each=False)
    pub.start()
    assert bytes(raw.data) == b"before\n"  # text written before goes out first
    for i in range(200):
        pub.publish("har/x/prediction", b'{"seq":%d}' % i)
    assert bytes(raw.data) == b"before\n"  # gathered: nothing written per line
    assert pub.stop() == 0
    lines = bytes(raw.data).decode().splitlines()
    assert lines == ["before"] + [f'har/x/prediction {{"seq":{i}}}' for i in range(200)]


def test_unpaced_lines_are_written_once_a_batch_is_full() -> None:
    raw = _Trickle()
    pub = StdoutPublisher(_stdout_like(raw), flush_each=False)
    pub.start()
    payload = b"x" * 1000
    n = StdoutPublisher.BATCH_BYTES // 1000 + 5
    for _ in range(n):
        pub.publish("t", payload)
    written = len(raw.data)
    assert StdoutPublisher.BATCH_BYTES <= written < n * 1003  # one batch out, the rest held
    pub.flush(1.0)
    assert bytes(raw.data) == b"".join(b"t " + payload + b"\n" for _ in range(n))


def test_paced_lines_are_written_one_by_one() -> None:
    raw = _Trickle()
    pub = StdoutPublisher(_stdout_like(raw), flush_each=True)
    pub.start()
    pub.publish("har/x/prediction", b'{"seq":1}')
    assert bytes(raw.data) == b'har/x/prediction {"seq":1}\n'
    pub.publish("har/x/status", b"online")
    assert bytes(raw.data).endswith(b"har/x/status online\n")


def test_a_buffered_binary_layer_gets_the_same_lines() -> None:
    buf = io.BytesIO()
    out = io.TextIOWrapper(buf, encoding="utf-8")
    pub = StdoutPublisher(out, flush_each=False)
    pub.start()
    pub.publish("a/b", b"{}")
    pub.stop()
    assert buf.getvalue() == b"a/b {}\n"


def test_an_unbuffered_stdout_replay_writes_every_prediction(tmp_path: object) -> None:
    """``python -u`` (or PYTHONUNBUFFERED): standard output's binary layer is a raw file."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-u", "-m", "agent", "replay", str(RECORDINGS[0]), "--fast",
           "--no-mqtt", "-m", "cnn1d-base", "--device", "test-unbuffered"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, env=env, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    preds = [ln for ln in lines if ln.startswith("har/test-unbuffered/prediction ")]
    assert len(preds) > 200
    seqs = [int(ln.split('"seq":')[1].split(",")[0]) for ln in preds]
    assert seqs == list(range(len(preds)))
