"""The bank's manifest when there is none: a missing folder is said as such."""

from pathlib import Path

import pytest

from agent.errors import ModelError
from agent.manifest import load_manifest


def test_a_missing_manifest_says_whether_the_folder_is_missing(tmp_path: Path) -> None:
    """A folder that is not there is not a bank to rebuild; an empty one names the command."""
    with pytest.raises(ModelError, match=r"no model manifest \(there is no folder .*nope\)"):
        load_manifest(tmp_path / "nope")
    with pytest.raises(ModelError, match=r"build the bank: python -m tools\.bank\.build"):
        load_manifest(tmp_path)
