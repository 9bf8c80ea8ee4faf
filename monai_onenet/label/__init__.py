"""OneNet in 3D Slicer through MONAI Label: ``python -m monai_onenet.label --studies DIR`` serves the MSD bundles.

The server needs the ``label`` extra (``pip install -e ".[label]"`` in its own virtual environment; see README).
Importing this package needs no MONAI Label: :func:`stage_bundle` prepares a bundle for it from the main install.
"""

from monai_onenet.label.staging import LABEL_MODELS, UNTRAINED_MARKER, default_bundles_dir, is_untrained, stage_bundle

__all__ = ["LABEL_MODELS", "UNTRAINED_MARKER", "default_bundles_dir", "is_untrained", "stage_bundle"]
