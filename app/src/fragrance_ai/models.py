"""Request bodies of the API (pydantic): a bad body is answered 422 naming the field and the rule."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Mode = Literal["fast", "balanced", "creative"]


class CreateDnaRequest(BaseModel):
    """POST /dna/create."""

    brief: str = Field(min_length=1, max_length=2000, description="The fragrance brief, in plain words")
    mode: Mode = Field("fast", description="How the LLM ensemble reads the brief")


class EvolveOptionsRequest(BaseModel):
    """POST /evolve/options."""

    dna_id: str = Field(min_length=1, max_length=64)
    brief: str = Field(min_length=1, max_length=2000)
    mode: Mode = "fast"
    algorithm: Literal["PPO"] = "PPO"
    num_options: int = Field(3, ge=1, le=10)


class FeedbackRequest(BaseModel):
    """POST /evolve/feedback."""

    experiment_id: str = Field(min_length=1, max_length=64)
    chosen_id: str = Field(min_length=1, max_length=64)
    rating: int = Field(ge=1, le=5, description="1 (bad) to 5 (great)")
