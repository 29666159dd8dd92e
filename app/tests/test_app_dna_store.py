"""Unit tests: DNA construction, every mutation action, features, and the bounded LRU store."""

from __future__ import annotations

import numpy as np
import pytest

from fragrance_ai import MODES, TIERS
from fragrance_ai.dna import ACTIONS, FEATURE_DIM, MAX_NOTES_PER_TIER, apply_action, dna_from_vote, features
from fragrance_ai.providers.simulated import SimulatedProvider
from fragrance_ai.store import LRUStore
from fragrance_ai.vocab import NOTES
from fragrance_ai.vote import weighted_vote


def _vote(brief: str = "warm amber vanilla evening", mode: str = "balanced") -> dict:
    providers = [SimulatedProvider(n, seed=0, latency_scale=0.0, n_providers=3) for n in "abc"]
    return weighted_vote([p.read(brief, mode) for p in providers], [1, 1, 1], mode=mode)


def _check(dna: dict) -> None:
    assert set(dna) == set(TIERS)
    assert sum(n["concentration"] for t in TIERS for n in dna[t]) == pytest.approx(100.0, abs=0.05)
    for tier in TIERS:
        names = [n["name"] for n in dna[tier]]
        assert 1 <= len(names) <= MAX_NOTES_PER_TIER and len(set(names)) == len(names)
        assert all(name in NOTES[tier] for name in names)
        assert all(n["concentration"] > 0 for n in dna[tier])


def test_dna_from_vote_follows_the_ranking_and_intensity() -> None:
    vote = _vote()
    dna = dna_from_vote(vote)
    _check(dna)
    for tier in TIERS:
        assert [n["name"] for n in dna[tier]] == vote["notes"][tier]
        conc = [n["concentration"] for n in dna[tier]]
        assert conc == sorted(conc, reverse=True)
    light = dna_from_vote({**vote, "intensity": 0.0})
    strong = dna_from_vote({**vote, "intensity": 1.0})
    base_share = lambda d: sum(n["concentration"] for n in d["base"])  # noqa: E731
    assert base_share(strong) > base_share(light) + 10


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_yields_a_valid_dna_and_leaves_the_input_alone(action: str) -> None:
    rng = np.random.default_rng(0)
    dna = dna_from_vote(_vote())
    snapshot = repr(dna)
    current = dna
    for _ in range(12):  # repeated application stays valid (e.g. add beyond the tier maximum)
        current = apply_action(current, action, "amber", rng)
        _check(current)
    assert repr(dna) == snapshot


def test_boost_raises_the_tier_share() -> None:
    dna = dna_from_vote(_vote())
    share = lambda d, t: sum(n["concentration"] for n in d[t])  # noqa: E731
    assert share(apply_action(dna, "boost_top", "amber", np.random.default_rng(0)), "top") > share(dna, "top")
    assert share(apply_action(dna, "soften_base", "amber", np.random.default_rng(0)), "base") < share(
        dna, "base"
    )


def test_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown action 'explode'"):
        apply_action(dna_from_vote(_vote()), "explode", "amber", np.random.default_rng(0))


def test_features_have_the_policy_dimension() -> None:
    vote = _vote()
    for mode in MODES:
        x = features(dna_from_vote(vote), vote["style"], mode, vote["intensity"])
        assert x.shape == (FEATURE_DIM,) and np.isfinite(x).all()


def test_lru_store_is_bounded_and_keeps_recently_used_entries() -> None:
    store: LRUStore[str, int] = LRUStore(3)
    for i in range(3):
        store.put(f"k{i}", i)
    assert store.get("k0") == 0  # k0 is now the most recent
    store.put("k3", 3)
    assert "k1" not in store and "k0" in store and len(store) == 3 and store.evictions == 1
    for i in range(10_000):
        store.put(f"x{i}", i)
    assert len(store) == 3 and store.get("missing") is None
    with pytest.raises(ValueError):
        LRUStore(0)
