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


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_the_examples_are_found():
    examples = 0
    for name in MODULES:
        finder = doctest.DocTestFinder()
        examples += sum(len(test.examples) for test in finder.find(importlib.import_module(name)))
    assert examples >= 20
