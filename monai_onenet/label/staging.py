"""Copy a OneNet bundle into a MONAI Label app folder, with the weights the server should serve.

MONAI Label serves a bundle from ``<app>/model/<name>/`` (``configs/`` and ``models/model.pt``) and trains into it.
This module needs no MONAI Label, so the main environment can test it.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch
from monai.bundle import ConfigParser

import monai_onenet  # noqa: F401  (the configs name monai_onenet factories)

__all__ = ["LABEL_MODELS", "UNTRAINED_MARKER", "default_bundles_dir", "stage_bundle", "is_untrained"]

logger = logging.getLogger(__name__)

LABEL_MODELS: Dict[str, str] = {"onenet_heart": "onenet_heart", "onenet_brain": "onenet_brain"}
"""Model name served by MONAI Label -> bundle folder under ``bundles/``."""

UNTRAINED_MARKER = "UNTRAINED"
"""A file beside ``models/model.pt`` whose presence means the weights are random, not trained."""

_CONFIGS = ("inference.json", "train.json", "metadata.json", "logging.conf")


def default_bundles_dir() -> Path:
    """The ``bundles/`` folder of the source tree this package was installed from (``pip install -e``)."""
    return Path(monai_onenet.__file__).resolve().parents[1] / "bundles"


def is_untrained(staged: str | os.PathLike) -> bool:
    """Whether the bundle staged at ``staged`` serves random weights."""
    return (Path(staged) / "models" / UNTRAINED_MARKER).exists()


def stage_bundle(
    name: str,
    app_dir: str | os.PathLike,
    bundles_dir: Optional[str | os.PathLike] = None,
    checkpoint: Optional[str | os.PathLike] = None,
    search: Sequence[str | os.PathLike] = (),
) -> Path:
    """Copy bundle ``name`` into ``<app_dir>/model/<name>`` and give it ``models/model.pt``.

    The weights, in order of preference: ``checkpoint`` when given (trained weights it replaces are kept as
    ``model.pt.replaced-<time>``); the staged ``model.pt`` when it is trained
    (a MONAI Label training writes it there); the first trained ``model.pt`` among ``search`` (e.g. the bundle's
    own ``runs/onenet_heart/models/model.pt``); the staged random weights; new random weights. Weights are checked
    against the network the copied inference config builds, so a mismatch stops the server at start. Random weights
    are marked with an ``UNTRAINED`` file and logged as a warning, so that the server says what it serves.
    The configs are copied on every call, so that a server restart picks up edited bundle configs.

    Args:
        name: a key of :data:`LABEL_MODELS`, e.g. ``"onenet_heart"``.
        app_dir: the MONAI Label app folder.
        bundles_dir: the folder holding the bundles; default :func:`default_bundles_dir`.
        checkpoint: a bundle checkpoint (the best ``model.pt`` or an epoch checkpoint holding ``"model"``).
        search: other places a trained ``model.pt`` may be, tried in order.

    Returns:
        The staged bundle folder.

    Example:
        >>> import tempfile
        >>> staged = stage_bundle("onenet_heart", tempfile.mkdtemp())  # no weights given: random, marked UNTRAINED
        >>> sorted(p.name for p in (staged / "models").iterdir()), is_untrained(staged)
        (['UNTRAINED', 'model.pt'], True)
    """
    if name not in LABEL_MODELS:
        raise ValueError(f"unknown model {name!r}; MONAI Label serves {', '.join(LABEL_MODELS)}.")
    source = Path(bundles_dir if bundles_dir is not None else default_bundles_dir()) / LABEL_MODELS[name]
    if not (source / "configs" / "inference.json").is_file():
        raise FileNotFoundError(
            f"no bundle at {source} (configs/inference.json missing). Pass --bundles to the folder that holds "
            f"{LABEL_MODELS[name]}/ (the repository's bundles/)."
        )
    staged = Path(app_dir) / "model" / name
    (staged / "configs").mkdir(parents=True, exist_ok=True)
    (staged / "models").mkdir(exist_ok=True)
    for config in _CONFIGS:
        shutil.copy2(source / "configs" / config, staged / "configs" / config)

    weights = staged / "models" / "model.pt"
    marker = staged / "models" / UNTRAINED_MARKER
    trained = [Path(p) for p in search if Path(p).is_file()]
    if checkpoint is not None:
        state = _fitting_state(staged, Path(checkpoint))
        if weights.is_file() and not marker.exists() and not _same_weights(weights, state):
            # Possibly trained in Slicer: kept beside, under a name MONAI Label does not list as a model (*.pt).
            kept = weights.with_name(f"model.pt.replaced-{time.strftime('%Y%m%d_%H%M%S')}")
            shutil.copy2(weights, kept)
            logger.warning(f"{name}: --checkpoint replaces the trained weights served so far; they are kept as {kept}")
        _write_weights(state, weights)
        marker.unlink(missing_ok=True)
        logger.info(f"{name}: serving {checkpoint}")
    elif weights.is_file() and not marker.exists():
        _fitting_state(staged, weights)  # the configs were copied afresh: they must still build this network
        logger.info(f"{name}: serving the weights already in {weights}")
    elif trained:
        _write_weights(_fitting_state(staged, trained[0]), weights)
        marker.unlink(missing_ok=True)
        logger.info(f"{name}: serving {trained[0]}")
    else:
        if not weights.is_file() or not _fits(staged, weights):
            _write_weights(_build_network(staged).state_dict(), weights)
            marker.write_text("random weights: train first, or start the server with --checkpoint NAME=PATH\n")
        logger.warning(
            f"{name} is UNTRAINED: it serves random weights and its labels mean nothing. Train it (the bundle's "
            f"train.json, or Train in 3D Slicer) or pass --checkpoint {name}=PATH/model.pt."
        )
    return staged


def _build_network(staged: Path) -> torch.nn.Module:
    parser = ConfigParser()
    parser.read_config(str(staged / "configs" / "inference.json"))
    parser["bundle_root"] = str(staged)
    return parser.get_parsed_content("network_def")


def _fits(staged: Path, path: Path) -> bool:
    try:
        _fitting_state(staged, path)
    except Exception:  # only asked of random weights, which are rebuilt whatever is wrong with them
        return False
    return True


def _same_weights(path: Path, state: Dict[str, torch.Tensor]) -> bool:
    # A restart with the same --checkpoint: nothing trained since would be lost, so nothing is kept aside.
    served = torch.load(path, map_location="cpu", weights_only=True)
    return served.keys() == state.keys() and all(torch.equal(served[k], state[k]) for k in state)


def _fitting_state(staged: Path, path: Path) -> Dict[str, torch.Tensor]:
    """The model weights in checkpoint ``path``, checked against the network the staged inference config builds."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist.")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    try:
        _build_network(staged).load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"{path} does not fit the network of {staged / 'configs' / 'inference.json'} (trained with another "
            f"--network or --spatial_dims?): {' '.join(str(error).split())[:300]}. Serve a checkpoint of the bundle's "
            'network, or set the same "network" in the bundle\'s inference.json.'
        ) from error
    return state


def _write_weights(state: Dict[str, torch.Tensor], path: Path) -> None:
    # Written next to the target and renamed: the server reloads model.pt when its modification time changes.
    partial = path.with_suffix(".pt.partial")
    torch.save(state, partial)
    os.replace(partial, path)
