"""Whether forward hooks watch modules that a fast path would run without calling them."""

from __future__ import annotations

from typing import Iterable

import torch.nn as nn

__all__ = ["has_forward_hooks"]


def has_forward_hooks(modules: Iterable[nn.Module]) -> bool:
    """Whether any of ``modules`` has a forward (pre-)hook, or a global one is registered.

    The folded and fused paths compute several modules in one kernel without calling them, so hooks there (a
    profiler, torchinfo, feature extraction) would silently miss their calls: those paths step aside instead.

    Args:
        modules: the modules a fast path would run without calling them.

    Example::

        >>> conv = nn.Conv2d(1, 1, 1)
        >>> has_forward_hooks([conv])
        False
        >>> handle = conv.register_forward_hook(lambda module, args, output: None)
        >>> has_forward_hooks([conv])
        True
    """
    if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
        return True
    return any(module._forward_hooks or module._forward_pre_hooks for module in modules)
