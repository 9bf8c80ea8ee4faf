"""What every benchmark command does with its result besides printing a table."""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

__all__ = ["write_json"]


def write_json(result: Dict[str, Any], *paths: Optional[str]) -> None:
    """Write ``result`` as indented JSON to each of ``paths``; ``None`` entries (an unset ``--json``) are skipped.

    Example::

        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "result.json")
        >>> write_json({"rows": []}, path, None)
        >>> open(path).read()
        '{\\n  "rows": []\\n}'
    """
    for path in filter(None, paths):
        with open(path, "w") as out:
            json.dump(result, out, indent=2)
