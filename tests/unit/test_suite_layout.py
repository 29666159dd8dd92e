"""The suite's own layout: test modules are imported by their file name (the test directories are not
packages), so two test files with one name in different directories stop the whole collection."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_test_module_has_a_name_of_its_own() -> None:
    found: defaultdict[str, list[str]] = defaultdict(list)
    for root in (REPO / "tests", REPO / "app" / "tests"):
        for path in root.rglob("test_*.py"):
            found[path.name].append(str(path.relative_to(REPO)))
    assert found, "no test module found: the layout changed, update this test"
    clashes = {name: paths for name, paths in found.items() if len(paths) > 1}
    assert not clashes, f"test modules sharing a name (pytest collects only the first): {clashes}"
