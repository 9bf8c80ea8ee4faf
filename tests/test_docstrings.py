"""Every example in a public docstring runs (the kornia habit): documentation that cannot drift from the code."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import monai_onenet

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(monai_onenet.__path__, prefix="monai_onenet.")
    if not info.name.endswith("__main__")
)
# Modules that import an optional extra at the top: checked where it is installed (the label environment in CI).
NEEDS_EXTRA = {"monai_onenet.label.app": "monailabel"}


def import_or_skip(name):
    if name in NEEDS_EXTRA:
        pytest.importorskip(NEEDS_EXTRA[name])
    return importlib.import_module(name)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = import_or_skip(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_the_examples_are_found():
    examples = 0
    for name in set(MODULES) - set(NEEDS_EXTRA):
        finder = doctest.DocTestFinder()
        examples += sum(len(test.examples) for test in finder.find(importlib.import_module(name)))
    assert examples >= 20
