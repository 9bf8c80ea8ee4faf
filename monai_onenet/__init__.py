"""monai_onenet: OneNet, a channel-wise 1D convolutional U-Net, as a MONAI plugin.

Importing the package makes ``"_target_": "OneNet"`` resolve in MONAI bundle configs (MONAI's config parser
looks up short class names in every imported module whose name starts with ``monai``).
"""

from __future__ import annotations

from monai_onenet.networks import OneNet, create_onenet

__version__ = "0.1.0"
__all__ = ["OneNet", "create_onenet", "__version__"]
