"""Windows and subject-wise splits."""

from __future__ import annotations

import numpy as np
import pytest

from agent.windowing import WindowSpec
from tools import data, hapt


def _exp(subject: int, number: int, labels: list[int]) -> hapt.Experiment:
    n = len(labels)
    values = np.arange(n * 6, dtype=np.float32).reshape(n, 6)
    return hapt.Experiment(subject, number, values, np.array(labels, dtype=np.int64))


def test_only_uniform_activity_windows_are_kept() -> None:
    spec = WindowSpec(length=4, hop=2, rate_hz=50.0)
    #          window starts: 0    2    4     6     8
    labels = [1, 1, 1, 1, 1, 1, 2, 2, 7, 7, 7, 7, -1, -1]
    ws = data.cut_windows([_exp(3, 5, labels)], spec)
    # [0:4] WALKING, [2:6] WALKING, [4:8] mixed, [6:10] mixed, [8:12] transition (not a class),
    # [10:14] unlabelled tail
    assert ws.y.tolist() == [0, 0]
    assert ws.x.shape == (2, 4, 6) and ws.x.dtype == np.float32
    np.testing.assert_array_equal(ws.x[1], np.arange(14 * 6, dtype=np.float32).reshape(14, 6)[2:6])
    assert ws.subject.tolist() == [3, 3] and ws.experiment.tolist() == [5, 5]


def test_short_experiment_gives_no_windows() -> None:
    ws = data.cut_windows([_exp(1, 1, [1, 1, 1])], WindowSpec(4, 2, 50.0))
    assert len(ws) == 0 and ws.x.shape == (0, 4, 6)


def test_split_keeps_test_subjects_out() -> None:
    split = data.make_split(range(1, 31))
    assert set(split.test) == set(hapt.TEST_SUBJECTS)
    assert set(split.val) == set(data.DEFAULT_VAL_SUBJECTS)
    assert not set(split.train) & set(hapt.TEST_SUBJECTS)
    assert not set(split.val) & set(hapt.TEST_SUBJECTS)
    assert not set(split.train) & set(split.val)
    assert set(split.train) | set(split.val) | set(split.test) == set(range(1, 31))


def test_validation_on_test_subjects_is_refused() -> None:
    with pytest.raises(ValueError, match="test subjects"):
        data.make_split(range(1, 31), val_subjects=(1, 2))


@pytest.fixture(scope="module")
def windows(experiments: list[hapt.Experiment]) -> data.WindowSet:
    return data.cut_windows(experiments)


def test_protocol_window_counts(windows: data.WindowSet) -> None:
    split = data.make_split(set(windows.subject.tolist()))
    train = windows.of_subjects(split.train)
    val = windows.of_subjects(split.val)
    test = windows.of_subjects(split.test)
    assert len(train) + len(val) + len(test) == len(windows)
    # the paper protocol: about 7,100 train and 2,900 test windows
    assert 6_900 <= len(train) + len(val) <= 7_300
    assert 2_750 <= len(test) <= 3_050
    assert 1_000 <= len(val) <= 2_000
    assert not set(train.subject.tolist()) & set(hapt.TEST_SUBJECTS)
    assert not set(val.subject.tolist()) & set(hapt.TEST_SUBJECTS)
    assert set(test.subject.tolist()) == set(hapt.TEST_SUBJECTS)
    for part in (train, val, test):
        assert min(part.class_counts().values()) > 100
    assert windows.x.shape[1:] == (128, 6)
