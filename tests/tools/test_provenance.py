"""The ``git_commit`` of the provenance: dirty means a tracked file changed, nothing else."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tools.provenance import REPO, git_commit

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    (root / "code.py").write_text("x = 1\n")
    _git(root, "add", "code.py")
    _git(root, "commit", "-q", "-m", "one")
    return root


@needs_git
def test_a_clean_checkout_is_its_commit(repo: Path) -> None:
    assert git_commit(repo) == _git(repo, "rev-parse", "HEAD")


@needs_git
def test_untracked_files_do_not_make_it_dirty(repo: Path, tmp_path: Path) -> None:
    """An untracked ``data`` symlink (the imported dataset) marked every build ``-dirty``."""
    (tmp_path / "dataset").mkdir()
    (repo / "data").symlink_to(tmp_path / "dataset")
    (repo / "scratch.txt").write_text("notes\n")
    assert git_commit(repo) == _git(repo, "rev-parse", "HEAD")


@needs_git
def test_a_changed_or_staged_tracked_file_makes_it_dirty(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "code.py").write_text("x = 2\n")
    assert git_commit(repo) == f"{head}-dirty"
    _git(repo, "checkout", "--", "code.py")
    (repo / "new.py").write_text("y = 1\n")
    _git(repo, "add", "new.py")  # staged: part of the code that would be committed
    assert git_commit(repo) == f"{head}-dirty"


def test_outside_a_checkout_it_is_none(tmp_path: Path) -> None:
    assert git_commit(tmp_path) is None


@needs_git
def test_by_default_it_asks_the_checkout_of_the_tools(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Not the working directory: a tool run from elsewhere records the code it ran."""
    monkeypatch.chdir(tmp_path)
    if not (REPO / ".git").exists():
        pytest.skip("the tools are not in a git checkout")
    assert (git_commit() or "").startswith(_git(REPO, "rev-parse", "HEAD"))
