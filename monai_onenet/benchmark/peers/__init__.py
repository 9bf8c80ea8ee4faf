"""Networks OneNet is compared with in the benchmarks (not part of the public network API)."""

from monai_onenet.benchmark.peers.unext import UNeXt, unext, unext_s

__all__ = ["UNeXt", "unext", "unext_s"]
