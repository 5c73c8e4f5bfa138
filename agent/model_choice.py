"""Which bank member a command names, checked against the bank with a message that says where
the id came from: ``--model``, ``--force``, or the profile's file and key.

(:func:`agent.wiring.pick_model` chooses the default member when none is named.)
"""

from __future__ import annotations

from agent.errors import ConfigError
from agent.manifest import Manifest, known_ids, load_manifest
from agent.profile import Profile


def profile_bank(profile: Profile) -> Manifest:
    """The bank the profile's ``model.dir`` names. A folder that does not exist is the
    profile's error (its file and key, as every other profile error), not a bank to rebuild."""
    folder = profile.resolve(profile.model.dir)
    if not folder.exists():
        raise ConfigError(
            f"{profile.where}: model.dir {profile.model.dir!r}: no such folder ({folder})"
        )
    return load_manifest(folder)


def unknown_model(where: str, model_id: str, manifest: Manifest) -> ConfigError:
    """``WHERE: unknown model 'ID' in FOLDER (known: a, b, c, ... 29 in all; see ...)``."""
    ids = [m.id for m in manifest.models]
    return ConfigError(f"{where}: unknown model {model_id!r} in {manifest.root} ({known_ids(ids)})")


def check_model(where: str, model_id: str, manifest: Manifest) -> None:
    """Raise :func:`unknown_model` unless the bank holds ``model_id``."""
    if not any(m.id == model_id for m in manifest.models):
        raise unknown_model(where, model_id, manifest)


def chosen_model_id(profile: Profile, manifest: Manifest, option: str | None) -> str:
    """The member a command was asked to run: ``--model``'s (``option``), else the profile's
    ``model.id``; "" when neither names one (``pick_model`` then takes the default). An id the
    bank does not hold is a :class:`ConfigError` naming ``--model``, or the profile's file and
    ``model.id`` as every other profile error does."""
    if option:
        check_model("--model", option, manifest)
        return option
    if profile.model.id:
        check_model(f"{profile.where}: model.id", profile.model.id, manifest)
    return profile.model.id
