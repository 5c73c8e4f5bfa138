import json
import re

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
        (b"\xff\xfe", False, "not UTF-8 text (byte 0 is 0xff)"),
        (b'{"cmd": "ping", "id": [1]}', False, "'id' must be"),
        (b"x" * 5000, False, "larger than"),
    ],
)
def test_commands(payload: bytes, ok: bool, fragment: str) -> None:
    reply = handle_command(payload, lambda: {"windows": 3})
    assert json.loads(reply)["ok"] is ok
    assert fragment in reply.decode()


def _assert_encodes_as_reference(
    enc: object, meta: tuple[str, tuple[str, ...], str, str, int, str], kw: dict[str, object]
) -> None:
    """The hot-path encoder built from ``meta`` (device, labels, model, smoothing, window,
    boot) gives :func:`encode_prediction`'s JSON for ``kw``: the same keys in the same order and
    exactly the same values (valid JSON), its probabilities and confidences written with four
    decimals, its latency with three."""
    device, labels, model, smoothing, window, boot = meta
    ref = encode_prediction(
        Prediction(
            device=device,
            labels=labels,
            model=model,
            smoothing=smoothing,
            smoothing_window=window,
            boot=boot,
            **kw,
        )  # type: ignore[arg-type]
    )
    fast = enc.encode(**kw)  # type: ignore[attr-defined]

    def refuse(name: str) -> None:  # Python's json reads NaN and Infinity; JSON has neither
        raise AssertionError(f"{name} in a prediction payload")

    got = json.loads(fast, parse_constant=refuse)
    want = json.loads(ref, parse_constant=refuse)
    assert got == want
    assert json.dumps(got) == json.dumps(want)  # (and the keys in the same order)
    four = r"-?\d+\.\d{4}"
    numbers = re.findall(r'"(?:confidence|[^"]+)":(-?\d+\.\d+)', fast.decode())
    assert numbers and all(re.fullmatch(four, n) for n in numbers[:-1]), fast
    assert re.search(r'"latency_ms":-?\d+\.\d{3},', fast.decode()), fast


@pytest.mark.parametrize("seed", range(5))
def test_fast_encoder_gives_the_reference_values(seed: int) -> None:
    import math
    import random

    from agent.payload import PredictionEncoder

    rng = random.Random(seed)
    labels = ("WALKING", 'odd "quoted"', "É-ü")
    meta = ("dev-1", labels, "cnn", "vote", 5, "b00t")
    enc = PredictionEncoder(*meta)
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
        _assert_encodes_as_reference(enc, meta, kw)


def test_deeply_nested_command_is_refused_not_raised() -> None:
    reply = json.loads(handle_command(b"[" * 4000, lambda: {}))
    assert reply["ok"] is False and "nested" in reply["error"]


FOUR_DECIMAL_CASES = [
    0.0,
    -0.0,
    1.0,
    0.5,
    0.25,
    1e-9,
    4.9999e-5,
    5e-5,
    5.0001e-5,
    0.00015,
    0.00025,
    0.12345,
    0.12355,
    0.99995,
    0.999949,
    0.99996,
    1.00004,
    1.00005,
    1.5,
    1234.56785,
    -0.12345,
    -1e-9,
    0.30000000000000004,
    0.1 + 0.2,
    2.675,
    0.3333333333333333,
    0.6666666666666666,
]


def test_fixed_decimals_read_back_as_round() -> None:
    """What the encoder relies on: ``%.4f`` text reads back as exactly ``round(v, 4)`` (both
    round correctly), for table cases (ties, the carry to 1.0, signs, large values), every
    float32 probability k/10^4 +- a few ulps, and random floats; ``%.3f`` as ``round(v, 3)``."""
    import math
    import random

    import numpy as np

    values = list(FOUR_DECIMAL_CASES)
    for k in range(10_001):
        for x in (k / 1e4, (k + 0.5) / 1e4):
            f = np.float32(x)
            values += [
                x,
                float(f),
                float(np.nextafter(f, np.float32(0))),
                float(np.nextafter(f, np.float32(2))),
            ]
            values += [math.nextafter(x, 0), math.nextafter(x, 2)]
    rng = random.Random(1)
    values += [rng.random() for _ in range(50_000)]
    values += [float(np.float32(rng.random())) for _ in range(50_000)]
    for v in values:
        assert float("%.4f" % v) == round(v, 4), v  # noqa: UP031 (the encoder's operation)
        assert float("%.3f" % v) == round(v, 3), v  # noqa: UP031


@pytest.mark.parametrize("smoothed", [False, True])
@pytest.mark.parametrize("truth", [None, "A", 'odd "B"'])
def test_encoder_templates_equal_json_dumps(smoothed: bool, truth: str | None) -> None:
    """Each of the four templates gives json.dumps's bytes, with edge probabilities."""
    import math

    from agent.payload import PredictionEncoder

    labels = ("A", 'odd "B"', "%s")
    meta = ("d%1", labels, "m%", "mean", 3, "b")
    enc = PredictionEncoder(*meta)
    for probs in (
        [0.0, 1.0, 0.0],
        [0.99995, 5e-5, 0.0],
        [math.nan, 0.5, math.inf],
        [1e-9, 0.12345, 0.2],
    ):
        kw: dict[str, object] = dict(
            seq=1,
            window_index=2,
            window_start="2012-01-01T00:00:00.000Z",
            window_end="2012-01-01T00:00:02.540Z",
            probs=probs,
            index=2,
            latency_ms=0.0005,
            published_at="2026-01-01T00:00:00.000Z",
            truth=truth,
        )
        if smoothed:
            kw.update(smoothed_index=1, smoothed_confidence=0.33335)
        _assert_encodes_as_reference(enc, meta, kw)
