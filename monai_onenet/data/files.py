"""File checks the dataset readers share, and fetching a dataset that is absent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Sequence, Tuple, Union

from monai_onenet.config_values import flag

__all__ = ["find_or_download", "require_files"]


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


def find_or_download(
    find: Callable[[Union[str, os.PathLike]], Path],
    root: Union[str, os.PathLike],
    download: Union[bool, str],
    archives: Sequence[Tuple[str, str]],
    into: Union[str, os.PathLike],
) -> Path:
    """``find(root)``; when that raises ``FileNotFoundError`` and ``download`` is true, fetch each ``(url, md5)`` of
    ``archives`` with MONAI's ``download_and_extract``, unpack it into ``into`` and ``find(root)`` again. Without
    ``download`` the finder's own error (which says where it looked and how to get the data) stands."""
    try:
        return find(root)
    except FileNotFoundError:
        if not flag(download, "download"):
            raise
    from monai.apps import download_and_extract

    for url, md5 in archives:
        archive = Path(into) / url.rsplit("/", 1)[-1]
        download_and_extract(url, str(archive), str(into), hash_val=md5, hash_type="md5")
    return find(root)
