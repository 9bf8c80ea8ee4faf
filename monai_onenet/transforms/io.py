"""Loading that names the file when it cannot be read."""

from __future__ import annotations

from pathlib import Path
from typing import Hashable, Mapping

from monai.transforms import LoadImaged

from monai_onenet.transforms.checks import InputCheckError

__all__ = ["LoadVolumed"]


class LoadVolumed(LoadImaged):
    """MONAI's ``LoadImaged``; a corrupt, truncated or unreadable file raises an ``InputCheckError`` (a
    ``ValueError``) that names it.

    MONAI reports such a file as "applying transform LoadImaged" with the cause deep in the traceback (a
    gzip ``EOFError`` for a truncated ``.nii.gz``); a user with hundreds of volumes needs the file name.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "broken.nii.gz")
        >>> _ = open(path, "wb").write(b"not a nifti")
        >>> LoadVolumed("image")({"image": path})
        Traceback (most recent call last):
        ...
        monai_onenet.transforms.checks.InputCheckError: .../broken.nii.gz: cannot be read as an image ...
    """

    def __call__(self, data: Mapping[Hashable, object], reader=None):
        try:
            return super().__call__(data, reader)
        except Exception as error:
            files = [str(data[key]) for key in self.key_iterator(dict(data))]
            missing = [file for file in files if not Path(file).exists()]
            if missing:
                raise InputCheckError(f"{', '.join(missing)}: no such file; check the path.") from error
            cause = error.__cause__ or error
            # MONAI words a file that every reader refuses as a missing reader library; the file is what is wrong.
            reason = (
                "none of MONAI's image readers can decode it"
                if "cannot find a suitable reader" in str(cause)
                else f"{type(cause).__name__}: {cause}"
            )
            raise InputCheckError(
                f"{', '.join(files)}: cannot be read as an image ({reason}). The file is corrupt or truncated, or "
                "not an image; replace or re-download it."
            ) from error
