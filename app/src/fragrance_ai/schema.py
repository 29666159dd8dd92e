"""The ``llm_brief`` JSON schema shipped with the package, its validator, and the schema fault."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from jsonschema import Draft202012Validator

SCHEMA_FILE = "llm_brief.schema.json"


@lru_cache(maxsize=1)
def brief_schema() -> dict[str, Any]:
    """The llm_brief schema as a dict (read once from the package data)."""
    text = resources.files("fragrance_ai").joinpath("schemas", SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = brief_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(document: Any) -> list[str]:
    """Human-readable violations of the llm_brief schema (empty list = valid)."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors]


# Ways an LLM answer typically goes wrong; the schema fault applies one at random.
CORRUPTIONS: tuple[str, ...] = ("drop_style", "intensity_as_text", "unknown_season", "empty_top_notes")


def break_document(document: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A copy of ``document`` damaged the way a misbehaving LLM would (schema_rate fault)."""
    broken = copy.deepcopy(document)
    kind = CORRUPTIONS[int(rng.integers(len(CORRUPTIONS)))]
    if kind == "drop_style":
        broken.pop("style", None)
    elif kind == "intensity_as_text":
        broken["intensity"] = "high"
    elif kind == "unknown_season":
        broken["season"] = "monsoon"
    else:
        broken["notes"]["top"] = []
    return broken
