"""Unit tests: weighted voting, the llm_brief schema and the simulated providers' determinism."""

from __future__ import annotations

import numpy as np
import pytest

from fragrance_ai import TIERS
from fragrance_ai.providers.base import ProviderReply
from fragrance_ai.providers.simulated import SimulatedProvider
from fragrance_ai.schema import CORRUPTIONS, break_document, brief_schema, schema_errors
from fragrance_ai.vocab import FAMILIES, GENDERS, NOTES, SEASONS
from fragrance_ai.vote import weighted_vote


def reply(
    model: str,
    style: str,
    *,
    confidence: float = 1.0,
    intensity: float = 0.5,
    top: tuple[str, ...] = ("bergamot", "lemon", "mint"),
) -> ProviderReply:
    return ProviderReply(
        model=model,
        style=style,
        season="summer",
        gender="unisex",
        intensity=intensity,
        notes={"top": top, "heart": ("rose", "jasmine", "iris"), "base": ("musk", "amber", "vanilla")},
        confidence=confidence,
    )


def test_majority_wins_with_equal_weights() -> None:
    doc = weighted_vote(
        [reply("a", "citrus"), reply("b", "woody"), reply("c", "citrus")], [1, 1, 1], mode="fast"
    )
    assert doc["style"] == "citrus"
    assert doc["votes"]["style"] == {"citrus": 2.0, "woody": 1.0}
    assert doc["confidence"] == pytest.approx(2 / 3, abs=1e-4)


def test_a_heavier_provider_outvotes_two_lighter_ones() -> None:
    replies = [reply("a", "citrus"), reply("b", "woody"), reply("c", "citrus")]
    assert weighted_vote(replies, [1.0, 2.5, 1.0], mode="fast")["style"] == "woody"
    assert weighted_vote(replies, [1.0, 1.9, 1.0], mode="fast")["style"] == "citrus"


def test_confidence_scales_a_providers_say() -> None:
    replies = [reply("a", "citrus", confidence=0.2), reply("b", "woody", confidence=0.9)]
    assert weighted_vote(replies, [1, 1], mode="fast")["style"] == "woody"


def test_tie_goes_to_the_earlier_provider() -> None:
    assert (
        weighted_vote([reply("a", "floral"), reply("b", "amber")], [1, 1], mode="fast")["style"] == "floral"
    )
    assert weighted_vote([reply("b", "amber"), reply("a", "floral")], [1, 1], mode="fast")["style"] == "amber"


def test_intensity_is_the_weighted_mean_and_notes_a_weighted_borda_count() -> None:
    replies = [
        reply("a", "citrus", intensity=0.2, top=("lemon", "bergamot", "mint")),
        reply("b", "citrus", intensity=0.8, top=("bergamot", "mint", "lemon")),
    ]
    doc = weighted_vote(replies, [3.0, 1.0], mode="fast")
    assert doc["intensity"] == pytest.approx((0.2 * 3 + 0.8 * 1) / 4)
    # lemon: 3*1 + 1*1/3 = 3.33; bergamot: 3*2/3 + 1*1 = 3; mint: 3*1/3 + 1*2/3 = 1.67
    assert doc["notes"]["top"] == ["lemon", "bergamot", "mint"]


def test_vote_needs_replies_and_matching_weights() -> None:
    with pytest.raises(ValueError):
        weighted_vote([], [], mode="fast")
    with pytest.raises(ValueError):
        weighted_vote([reply("a", "citrus")], [1, 2], mode="fast")


@pytest.mark.parametrize("mode", ["fast", "balanced", "creative"])
def test_ensemble_documents_of_many_briefs_validate(mode: str) -> None:
    providers = [SimulatedProvider(n, seed=3, latency_scale=0.0, n_providers=3) for n in "abc"]
    briefs = [
        "",
        "x",
        "fresh citrus summer",
        "warm vanilla cozy winter evening for her",
        "bold leather " * 50,
        "rain meadow green tea light",
        "🌸 rose garden wedding",
        "smoky incense night dramatic men",
    ]
    for brief in briefs:
        doc = weighted_vote([p.read(brief, mode) for p in providers], [1.0, 0.8, 1.2], mode=mode)
        assert schema_errors(doc) == [], (brief, doc)


def test_simulated_provider_is_deterministic_for_a_seed() -> None:
    one = SimulatedProvider("m", seed=1, latency_scale=0.0, n_providers=3)
    again = SimulatedProvider("m", seed=1, latency_scale=0.0, n_providers=3)
    other = SimulatedProvider("m", seed=2, latency_scale=0.0, n_providers=3)
    briefs = [f"brief {i} citrus woody rose" for i in range(20)]
    assert [one.read(b, "creative") for b in briefs] == [again.read(b, "creative") for b in briefs]
    assert [one.read(b, "creative") for b in briefs] != [other.read(b, "creative") for b in briefs]
    assert one.read("summer lemon zesty sunny", "fast").style == "citrus"


def test_schema_enumerations_match_the_vocabulary() -> None:
    props = brief_schema()["properties"]
    assert props["style"]["enum"] == list(FAMILIES)
    assert props["season"]["enum"] == list(SEASONS)
    assert props["gender"]["enum"] == list(GENDERS)
    for tier in TIERS:
        assert set(props["notes"]["properties"][tier]["items"]["enum"]) == set(NOTES[tier])


def _valid_document() -> dict:
    provider = SimulatedProvider("m", seed=0, latency_scale=0.0, n_providers=1)
    return weighted_vote([provider.read("fresh citrus", "fast")], [1.0], mode="fast")


def test_schema_rejects_what_it_should() -> None:
    doc = _valid_document()
    assert schema_errors(doc) == []
    for key, value in [
        ("intensity", 1.5),
        ("mode", "turbo"),
        ("models", []),
        ("extra", 1),
        ("schema_version", "2.0"),
        ("confidence", -0.1),
    ]:
        assert schema_errors({**doc, key: value}), key
    assert schema_errors({**doc, "notes": {**doc["notes"], "top": ["unobtainium"]}})
    assert schema_errors({k: v for k, v in doc.items() if k != "votes"})
    assert schema_errors("not an object")


def test_every_schema_fault_corruption_fails_validation_and_leaves_the_original_intact() -> None:
    doc = _valid_document()
    seen = set()
    for seed in range(40):
        broken = break_document(doc, np.random.default_rng(seed))
        assert schema_errors(broken), broken
        seen.add(next(c for c in CORRUPTIONS if _matches(c, broken)))
    assert seen == set(CORRUPTIONS)
    assert schema_errors(doc) == []


def _matches(kind: str, broken: dict) -> bool:
    return {
        "drop_style": "style" not in broken,
        "intensity_as_text": broken.get("intensity") == "high",
        "unknown_season": broken.get("season") == "monsoon",
        "empty_top_notes": broken.get("notes", {}).get("top") == [],
    }[kind]
