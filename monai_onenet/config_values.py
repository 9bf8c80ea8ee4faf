"""Values that reach a bundle config from the command line, read strictly."""

from __future__ import annotations

from typing import Union

__all__ = ["flag"]

_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def flag(value: Union[bool, int, str], name: str = "flag") -> bool:
    """A yes / no setting as a bool: ``True``/``False`` or the strings ``true``/``false`` (any case), ``yes``/``no``,
    ``1``/``0``.

    ``python -m monai.bundle run ... --classify false`` hands the config the *string* ``"false"`` (fire parses
    only Python literals), which Python reads as true; every bundle flag goes through this instead.

    Example:
        >>> flag(True), flag("false"), flag("True", "download")
        (True, False, True)
        >>> flag("maybe", "classify")
        Traceback (most recent call last):
        ...
        ValueError: classify must be true or false, got 'maybe'
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")
