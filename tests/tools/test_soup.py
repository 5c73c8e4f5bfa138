"""The uniform weight soup (``tools.bank.soup``) that member distillation keeps."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from tools.bank.soup import average_weights  # noqa: E402

pytestmark = pytest.mark.tools


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_the_soup_is_the_element_wise_mean_and_leaves_its_runs_alone() -> None:
    runs = [_net(s) for s in (0, 1, 2)]
    before = [{k: v.clone() for k, v in r.state_dict().items()} for r in runs]
    soup = average_weights(runs)
    assert all(soup is not r for r in runs)
    for k, v in soup.state_dict().items():
        want = (before[0][k] + before[1][k] + before[2][k]) / 3
        assert torch.allclose(v, want, atol=1e-7), k
        assert not torch.equal(v, before[0][k])  # really averaged, not the first run's
    for r, b in zip(runs, before, strict=True):  # the runs are not changed
        assert all(torch.equal(r.state_dict()[k], b[k]) for k in b)
    assert not soup.training


def test_one_run_is_its_own_soup() -> None:
    run = _net(0)
    soup = average_weights([run])
    x = torch.randn(5, 3)
    assert torch.equal(soup(x), run.eval()(x))


def test_integer_buffers_come_from_the_first_run() -> None:
    a, b = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    a.num_batches_tracked.fill_(3)
    b.num_batches_tracked.fill_(8)
    b.running_mean.fill_(1.0)
    soup = average_weights([a, b])
    assert int(soup.num_batches_tracked) == 3
    assert torch.equal(soup.running_mean, torch.full((2,), 0.5))


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (
            nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3)),
            r"model 2: 2\.weight is \(3, 4\)",
        ),
        (nn.Sequential(nn.Linear(3, 4)), "model 2 has other weights than model 1"),
    ],
)
def test_networks_of_another_shape_are_refused(other: nn.Module, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        average_weights([_net(0), other])


def test_no_networks_is_refused() -> None:
    with pytest.raises(ValueError, match="no models"):
        average_weights([])
