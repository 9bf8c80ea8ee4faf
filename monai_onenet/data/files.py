"""File checks the dataset readers share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Union

__all__ = ["require_files"]


def require_files(paths: Iterable[Union[str, os.PathLike]], listed_in: str, hint: str = "") -> None:
    """Raise one ``FileNotFoundError`` that lists every path that is not a file (the first ten, then a count).

    Example:
        >>> require_files(["/no/such/file.png"], "train.txt")
        Traceback (most recent call last):
        ...
        FileNotFoundError: train.txt lists 1 file(s) that do not exist:
          /no/such/file.png
    """
    missing = [str(path) for path in paths if not Path(path).is_file()]
    if missing:
        shown = "\n  ".join(missing[:10]) + (f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise FileNotFoundError(f"{listed_in} lists {len(missing)} file(s) that do not exist:\n  {shown}" + hint)
