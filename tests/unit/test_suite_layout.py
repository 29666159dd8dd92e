"""The suite's own layout: test modules are imported by their file name (the test directories are not
packages), so two test files with one name in different directories stop the whole collection; and
`make test` runs every test directory, in one of its two tiers."""

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


def test_make_test_runs_every_test_directory_once() -> None:
    tiers = {}
    for line in (REPO / "Makefile").read_text().splitlines():
        name, _, value = line.partition(" = ")
        if name in ("FAST_TIERS", "LIVE_TIERS"):
            tiers[name] = value.split()
    assert set(tiers) == {"FAST_TIERS", "LIVE_TIERS"}, f"the Makefile's tier lists changed: {tiers}"
    listed = tiers["FAST_TIERS"] + tiers["LIVE_TIERS"]
    found = {
        str(path.parent.relative_to(REPO))
        for root in (REPO / "tests", REPO / "app" / "tests")
        for path in root.rglob("test_*.py")
    }
    assert sorted(listed) == sorted(set(listed)), f"a directory in both tiers: {listed}"

    def tier_of(directory: str) -> str | None:
        return next((tier for tier in listed if directory == tier or directory.startswith(tier + "/")), None)

    missed = sorted(directory for directory in found if tier_of(directory) is None)
    assert not missed, f"test directories `make test` does not run: {missed}"
    assert {tier_of(directory) for directory in found} == set(listed), "a tier without tests"
