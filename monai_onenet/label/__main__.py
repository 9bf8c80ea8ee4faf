"""Start a MONAI Label server that serves the OneNet bundles to 3D Slicer.

    python -m monai_onenet.label --studies DIR [--port 8000] [--checkpoint onenet_heart=PATH/model.pt]

The bundles are staged into ``--app_dir`` (``model/<name>/``, where MONAI Label also writes what it trains), the
app's ``main.py`` is written there, and MONAI Label's own ``start_server`` runs in this process.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from monai_onenet.label.staging import LABEL_MODELS, default_bundles_dir, stage_bundle

_MAIN_PY = '''"""Written by `python -m monai_onenet.label`: MONAI Label loads the app class from here."""

from monai_onenet.label.app import OneNetLabelApp  # noqa: F401
'''


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line of ``python -m monai_onenet.label`` (``argv`` defaults to ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(prog="python -m monai_onenet.label", description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", required=True, help="folder of NIfTI studies (labels go to labels/final/)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to accept other machines (3D Slicer elsewhere)")
    parser.add_argument("--app_dir", default="monailabel_onenet", help="where the served bundles and logs are kept")
    parser.add_argument("--models", nargs="+", default=list(LABEL_MODELS), choices=list(LABEL_MODELS))
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="weights to serve, e.g. onenet_heart=runs/onenet_heart/models/model.pt (default: the weights already "
        "served, else runs/<name>/models/model.pt, else random weights with a warning)",
    )
    parser.add_argument("--bundles", default=None, help="folder holding the bundles (default: the repository's)")
    parser.add_argument("--skip_trainers", action="store_true", help="serve inference only")
    return parser.parse_args(argv)


def _checkpoints(pairs: List[str]) -> Dict[str, str]:
    checkpoints = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or name not in LABEL_MODELS:
            raise SystemExit(f"--checkpoint {pair!r}: expected NAME=PATH with NAME one of {', '.join(LABEL_MODELS)}.")
        checkpoints[name] = path
    return checkpoints


def prepare_app(args: argparse.Namespace) -> Path:
    """Stage the bundles and write ``main.py`` into ``args.app_dir``; return the app folder."""
    if not os.path.isdir(args.studies):
        raise SystemExit(f"no studies folder {args.studies}: give a folder of NIfTI images (*.nii.gz) with --studies.")
    app_dir = Path(args.app_dir).resolve()
    checkpoints = _checkpoints(args.checkpoint)
    for name in args.models:
        search = [Path("runs") / name / "models" / "model.pt"]
        stage_bundle(name, app_dir, args.bundles or default_bundles_dir(), checkpoints.get(name), search)
    (app_dir / "main.py").write_text(_MAIN_PY)
    return app_dir


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Stage the bundles, then run MONAI Label's ``start_server`` on them in this process (until interrupted)."""
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(levelname)s] (%(name)s) - %(message)s")
    args = parse_args(argv)
    app_dir = prepare_app(args)

    from monailabel.main import Main  # the MONAI Label server is an optional extra: imported only to serve

    conf = ["--conf", "models", ",".join(args.models), "--conf", "skip_trainers", str(args.skip_trainers).lower()]
    server = ["start_server", "--app", str(app_dir), "--studies", args.studies, "--host", args.host]
    sys.argv = ["monailabel", *server, "--port", str(args.port), *conf]
    Main().run()


if __name__ == "__main__":
    main()
