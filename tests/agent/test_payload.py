import json

import pytest

from agent.commands import handle_command
from agent.payload import (
    PREDICTION_SCHEMA,
    Prediction,
    Topics,
    encode_prediction,
    iso_at,
    parse_time,
)


def _pred(**kw: object) -> Prediction:
    base = dict(
        device="dev1",
        seq=7,
        window_index=9,
        window_start="2012-01-01T00:00:01.280Z",
        window_end="2012-01-01T00:00:03.820Z",
        labels=("A", "B"),
        probs=(0.25, 0.75),
        index=1,
        model="cnn",
        latency_ms=0.1234,
        published_at="2026-01-01T00:00:00.000Z",
    )
    base.update(kw)
    return Prediction(**base)  # type: ignore[arg-type]


def test_topics() -> None:
    t = Topics("har", "pi4")
    assert (t.prediction, t.status, t.command, t.response) == (
        "har/pi4/prediction",
        "har/pi4/status",
        "har/pi4/cmd",
        "har/pi4/cmd/response",
    )


def test_payload_schema() -> None:
    body = json.loads(encode_prediction(_pred()))
    assert body == {
        "schema": PREDICTION_SCHEMA,
        "device": "dev1",
        "boot": "",
        "seq": 7,
        "window": {
            "index": 9,
            "start": "2012-01-01T00:00:01.280Z",
            "end": "2012-01-01T00:00:03.820Z",
        },
        "label": "B",
        "confidence": 0.75,
        "probs": {"A": 0.25, "B": 0.75},
        "smoothed": None,
        "model": "cnn",
        "latency_ms": 0.123,
        "ts": "2026-01-01T00:00:00.000Z",
    }


def test_payload_smoothed_and_truth() -> None:
    body = json.loads(
        encode_prediction(
            _pred(
                smoothed_index=0,
                smoothed_confidence=0.6,
                smoothing="mean",
                smoothing_window=3,
                truth="A",
            )
        )
    )
    assert body["smoothed"] == {"label": "A", "confidence": 0.6, "method": "mean", "window": 3}
    assert body["truth"] == "A" and body["label"] == "B"


@pytest.mark.parametrize(
    ("origin", "offset", "expected"),
    [
        ("2012-01-01T00:00:00Z", 1.28, "2012-01-01T00:00:01.280Z"),
        ("2012-01-01T01:00:00+01:00", 0.0, "2012-01-01T00:00:00.000Z"),
        ("2012-01-01T00:00:00", 61.5, "2012-01-01T00:01:01.500Z"),
    ],
)
def test_times(origin: str, offset: float, expected: str) -> None:
    assert iso_at(parse_time(origin), offset) == expected


@pytest.mark.parametrize(
    ("payload", "ok", "fragment"),
    [
        (b'{"cmd": "ping"}', True, '"cmd":"ping"'),
        (b'{"cmd": "status", "id": "r1"}', True, '"windows":3'),
        (b'{"cmd": "status", "id": "r1"}', True, '"id":"r1"'),
        (b'{"cmd": "reboot"}', False, "unknown command 'reboot'"),
        (b'{"cmd": "ping", "path": "/etc/passwd"}', False, "unexpected field"),
        (b"not json", False, "Expecting value"),
        (b"[1, 2]", False, "must be a JSON object"),
        (b"\xff\xfe", False, "codec"),
        (b'{"cmd": "ping", "id": [1]}', False, "'id' must be"),
        (b"x" * 5000, False, "larger than"),
    ],
)
def test_commands(payload: bytes, ok: bool, fragment: str) -> None:
    reply = handle_command(payload, lambda: {"windows": 3})
    assert json.loads(reply)["ok"] is ok
    assert fragment in reply.decode()


@pytest.mark.parametrize("seed", range(5))
def test_fast_encoder_is_byte_identical_to_reference(seed: int) -> None:
    import math
    import random

    from agent.payload import PredictionEncoder

    rng = random.Random(seed)
    labels = ("WALKING", 'odd "quoted"', "É-ü")
    enc = PredictionEncoder("dev-1", labels, "cnn", "vote", 5, "b00t")
    for i in range(200):
        probs = [rng.random() for _ in labels]
        if i % 17 == 0:
            probs[1] = math.nan
        kw: dict[str, object] = dict(
            seq=i,
            window_index=i + 3,
            window_start="2012-01-01T00:00:00.000Z",
            window_end="2012-01-01T00:00:02.540Z",
            probs=probs,
            index=rng.randrange(3),
            latency_ms=rng.random() * 5,
            published_at="2026-01-01T00:00:00.000Z",
        )
        if i % 2:
            kw.update(smoothed_index=rng.randrange(3), smoothed_confidence=rng.random())
        if i % 3:
            kw["truth"] = labels[0]
        ref = encode_prediction(
            Prediction(
                device="dev-1",
                labels=labels,
                model="cnn",
                smoothing="vote",
                smoothing_window=5,
                boot="b00t",
                **kw,
            )  # type: ignore[arg-type]
        )
        assert enc.encode(**kw) == ref  # type: ignore[arg-type]
        json.loads(ref)


def test_deeply_nested_command_is_refused_not_raised() -> None:
    reply = json.loads(handle_command(b"[" * 4000, lambda: {}))
    assert reply["ok"] is False and "nested" in reply["error"]
