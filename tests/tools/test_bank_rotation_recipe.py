"""Random rotations through the whole recipe: a bank built with ``build --rotate`` is distilled,
pruned and fine-tuned with the same rotations by default (``distill --rotate`` overrides), and
its independent baselines are trained with them too, so the comparison stays like for like."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from agent.manifest import load_manifest  # noqa: E402
from agent.windowing import Normalizer  # noqa: E402
from tools.bank import build, compress, distill, independent_train  # noqa: E402
from tools.bank.augment import supernet_rotation  # noqa: E402
from tools.bank.finetune import FinetuneConfig, finetune  # noqa: E402
from tools.bank.supernet import SlimCNN, SlimConfig  # noqa: E402
from tools.bank.train import BankTrainConfig  # noqa: E402
from tools.bank.windows import aligned_windows  # noqa: E402
from tools.hapt import Experiment  # noqa: E402

pytestmark = pytest.mark.tools


def _triad_norms(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(*x.shape[:2], 2, 3).norm(dim=3)


class _Spy(torch.nn.Module):
    """A tiny classifier that records its inputs."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(length * 6, 3)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.fc(x.flatten(1))


def test_finetune_turns_raw_windows_and_needs_the_normalisation() -> None:
    gen = torch.Generator().manual_seed(0)
    mean = torch.tensor([0.8, 0.0, 0.1, 0.0, 0.0, 0.0])
    std = torch.tensor([0.4, 0.4, 0.3, 0.4, 0.4, 0.2])
    raw = torch.randn(32, 8, 6, generator=gen) + mean
    x = (raw - mean) / std
    y = torch.zeros(32, dtype=torch.long)
    cfg = FinetuneConfig(batch_size=32, scale_aug=0.0, rotate_deg=20.0, weight_decay=0.0)
    model = _Spy(8)
    finetune(model, None, x, y, 1, cfg, torch.Generator().manual_seed(1), norm=(mean, std))
    (seen,) = model.seen
    turned = seen * std + mean  # back to raw units: each triad keeps its length
    order = torch.randperm(32, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(_triad_norms(turned), _triad_norms(raw[order]), atol=1e-5)
    assert not torch.allclose(turned, raw[order], atol=1e-3)
    with pytest.raises(ValueError, match="normalisation"):
        finetune(model, None, x, y, 1, cfg, torch.Generator())
    plain = _Spy(8)  # off: the windows as they are (no draw, no round trip)
    off = dataclasses.replace(cfg, rotate_deg=0.0)
    finetune(plain, None, x, y, 1, off, torch.Generator().manual_seed(1))
    assert torch.equal(plain.seen[0], x[order])


def test_independent_training_turns_its_windows_as_the_supernet_does() -> None:
    rng = np.random.default_rng(0)
    exps = [Experiment(1, 1, rng.standard_normal((700, 6)).astype(np.float32), np.ones(700, int))]
    data = aligned_windows(exps, (64,), 32)
    norm = Normalizer((0.0,) * 6, (1.0,) * 6)
    seen: dict[float, list[torch.Tensor]] = {}
    for angle in (0.0, 30.0):
        torch.manual_seed(0)
        model = SlimCNN(SlimConfig(channels=(8, 8, 8)))
        calls: list[torch.Tensor] = []
        forward = model.forward

        def spy(x: torch.Tensor, width: float = 1.0, calls: Any = calls, f: Any = forward) -> Any:
            calls.append(x.detach().clone())
            return f(x, width)

        model.forward = spy  # type: ignore[method-assign]
        cfg = BankTrainConfig(epochs=1, batch_size=16, scale_aug=0.0, rotate_deg=angle)
        independent_train.train_single(model, 0.5, 64, data, norm, cfg)
        seen[angle] = calls
    assert len(seen[0.0]) == len(seen[30.0]) == -(-len(data) // 16) > 1
    for a, b in zip(seen[0.0], seen[30.0], strict=True):  # same windows, turned
        assert torch.allclose(_triad_norms(a), _triad_norms(b), atol=1e-4)
        assert not torch.allclose(a, b, atol=1e-3)


@pytest.fixture(scope="module")
def turned_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke bank whose supernet was trained with rotations up to 10 degrees (not distilled)."""
    out = tmp_path_factory.mktemp("rot") / "bank"
    argv = ["--smoke", "--max-steps", "2", "--distill-epochs", "0", "--rotate", "10"]
    build.run(build.parse_args([*argv, "--out", str(out)]))
    return out


@pytest.mark.parametrize(("option", "angle"), [([], 10.0), (["--rotate", "0"], 0.0)])
def test_distillation_takes_the_supernets_rotations_unless_told(
    turned_bank: Path, tmp_path: Path, option: list[str], angle: float
) -> None:
    bank = tmp_path / "bank"
    shutil.copytree(turned_bank, bank)
    entry = load_manifest(bank).get("wc-w0.25-r064")
    assert entry.provenance["train_config"]["rotate_deg"] == 10.0 == supernet_rotation(entry)
    argv = ["--smoke", "--epochs", "1", "--bank", str(bank), "--keep-teacher", *option]
    distill.run(distill.parse_args([*argv, "--members", "wc-w0.25-r064"]))
    got = load_manifest(bank).get("wc-w0.25-r064").provenance["distilled"]
    assert got["finetune_config"]["rotate_deg"] == angle


def test_pruning_fine_tunes_take_the_parents_rotations(turned_bank: Path, tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    shutil.copytree(turned_bank, bank)
    compress.run(compress.parse_args(["--smoke", "--out", str(bank), "--no-quantize"]))
    pruned = [m for m in load_manifest(bank).models if m.family == "pruned"]
    assert pruned
    for m in pruned:
        assert m.provenance["prune_config"]["finetune"]["rotate_deg"] == 10.0


def test_entries_without_the_option_have_no_rotation() -> None:
    class _E:
        provenance: dict[str, Any] = {"train_config": {"epochs": 40}}

    assert supernet_rotation(_E()) == 0.0  # type: ignore[arg-type]
    _E.provenance = {}
    assert supernet_rotation(_E()) == 0.0  # type: ignore[arg-type]


def test_distill_option() -> None:
    assert distill.parse_args(["--bank", "x"]).rotate is None  # the supernet's, when it runs
    assert distill.parse_args(["--bank", "x", "--rotate", "5"]).rotate == 5.0
    for bad in ("-1", "200", "nan"):
        with pytest.raises(SystemExit):
            distill.parse_args(["--bank", "x", "--rotate", bad])
