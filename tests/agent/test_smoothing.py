import numpy as np
import pytest

from agent.smoothing import Smoother


def onehot(i: int, p: float = 0.9, n: int = 3) -> np.ndarray:
    v = np.full(n, (1 - p) / (n - 1), dtype=np.float32)
    v[i] = p
    return v


@pytest.mark.parametrize(
    ("method", "k", "seq", "expected"),
    [
        ("none", 5, [0, 1, 2], [0, 1, 2]),
        ("vote", 3, [0, 0, 1, 1, 1, 2], [0, 0, 0, 1, 1, 1]),
        ("vote", 2, [0, 1, 2], [0, 1, 2]),  # ties go to the most recent label
        ("vote", 1, [2, 0], [2, 0]),
        ("mean", 3, [0, 0, 1, 1, 1], [0, 0, 0, 1, 1]),
    ],
)
def test_smoothed_labels(method: str, k: int, seq: list[int], expected: list[int]) -> None:
    s = Smoother(method, k)
    assert [s.update(onehot(i)).index for i in seq] == expected


def test_vote_confidence_is_share() -> None:
    s = Smoother("vote", 4)
    for i in [0, 0, 1, 0]:
        r = s.update(onehot(i))
    assert r.index == 0 and r.confidence == pytest.approx(0.75)


def test_mean_confidence_is_average_probability() -> None:
    s = Smoother("mean", 2)
    s.update(np.array([0.8, 0.2], dtype=np.float32))
    r = s.update(np.array([0.4, 0.6], dtype=np.float32))
    assert r.index == 0 and r.confidence == pytest.approx(0.6)


def test_reset_and_validation() -> None:
    s = Smoother("vote", 3)
    s.update(onehot(1))
    s.reset()
    assert s.update(onehot(2)).index == 2
    with pytest.raises(ValueError):
        Smoother("median", 3)
    with pytest.raises(ValueError):
        Smoother("mean", 0)


@pytest.mark.parametrize("k", [1, 2])
def test_mean_refuses_a_vector_of_another_length(k: int) -> None:
    """A running sum of six classes cannot take five (full window or not): said, not cut."""
    s = Smoother("mean", k)
    s.update([0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="5 probabilities after 6"):
        s.update([0.2, 0.2, 0.2, 0.2, 0.2])
