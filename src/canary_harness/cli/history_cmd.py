"""`canary history`: the deployment journal as a table or as JSON lines."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from canary_harness import journal
from canary_harness.config import parse_version, resolve_stack_settings
from canary_harness.configuration.cli import add_location_options, config_path
from canary_harness.errors import ConfigError
from canary_harness.target import load_config

_COLUMNS = ("TIME (UTC)", "EVENT", "VERSION", "STAGE", "ACTOR", "REASON", "DETAILS")
_MAX_CELL = 60


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``history``."""
    parser = subparsers.add_parser(
        "history", help="print the deployment journal",
        description="Every weight change, stage verdict, rollback and promotion recorded in the journal "
                    "of the run directory, oldest first.",
    )  # fmt: skip
    add_location_options(parser)
    parser.add_argument("--version", help="only entries of this version")
    parser.add_argument("--limit", help="only the last N entries (after --version)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line, as in the journal")
    parser.set_defaults(handler=_history)


def parse_limit(raw: str, source: str) -> int:
    """A positive entry count."""
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ConfigError(f"limit {raw!r} ({source}): must be an integer ≥ 1")
    return int(text)


def select(
    entries: Sequence[journal.JournalEntry], *, version: str | None = None, limit: int | None = None
) -> list[journal.JournalEntry]:
    """The entries of ``version`` (all when None), the last ``limit`` of them (all when None)."""
    chosen = [entry for entry in entries if version is None or entry.version == version]
    return chosen[-limit:] if limit is not None else chosen


def _cell(value: object) -> str:
    text = " ".join(str(value).split())  # one line per entry, whatever the reason holds
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def _compact(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))


def _row(entry: journal.JournalEntry) -> tuple[str, ...]:
    when = dt.datetime.fromtimestamp(entry.time, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    details = " ".join(f"{key}={_compact(value)}" for key, value in sorted(entry.details.items()))
    stage = "" if entry.stage is None else f"{entry.stage}%"
    return tuple(
        _cell(value) for value in (when, entry.event, entry.version or "", stage, entry.actor, entry.reason, details)
    )


def format_table(entries: Sequence[journal.JournalEntry]) -> str:
    """The entries as an aligned table, one line each."""
    rows = [_COLUMNS, *(_row(entry) for entry in entries)]
    widths = [max(len(row[index]) for row in rows) for index in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _history(args: argparse.Namespace) -> int:
    version = None if args.version is None else parse_version(args.version, "from --version")
    limit = None if args.limit is None else parse_limit(args.limit, "from --limit")
    toml = load_config(config_path(args))
    run_dir = resolve_stack_settings(toml=toml, run_dir=args.run_dir).run_dir
    entries = select(list(journal.read(run_dir, strict=True)), version=version, limit=limit)
    if args.json:
        for entry in entries:
            print(json.dumps(entry.to_dict(), default=str, sort_keys=True))
        return 0
    if not entries:
        which = f" for {version}" if version else ""
        print(f"no journal entries{which} in {journal.journal_path(run_dir)}")
        return 0
    print(format_table(entries))
    return 0
