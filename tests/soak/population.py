"""The soak's shared population: a small set of people whom every client process names by the same identifiers,
so that their writes collide. No Django here: the client processes import it without settings.

People come in generations: every GENERATION_SECONDS the clients move on to a fresh PEOPLE (still sometimes
going back to the previous generation), so that a long run keeps meeting people whose several subjects (one per
identifier a touchpoint knew them by) have not all merged yet."""

from __future__ import annotations

import random

PEOPLE = 40
HOT = 8  # half of all calls go to these few people: more calls on one person at the same moment
GENERATION_SECONDS = 30.0  # long enough for a few calls per person at the machine's pace
MERGE_KINDS = ("email", "customer_number", "loyalty_card")  # all three are in the catalogue's merge_identifiers
ONE_PER_PERSON = ("customer_number",)  # two customer numbers are two people: a cross link is a merge proposal


def identifiers(person: int, generation: int) -> dict[str, str]:
    """Every identifier of one person, as a touchpoint would send it (normalised already)."""
    return {
        "email": f"p{person}.g{generation}@soak.example",
        "customer_number": f"S{generation}-{person}",
        "loyalty_card": f"L{generation}-{person}",
    }


def some_identifiers(rng: random.Random, person: int, generation: int, *, need: str | None = None) -> dict[str, str]:
    """A non-empty subset of the person's identifiers (what one touchpoint happens to know), with `need` in it."""
    every = identifiers(person, generation)
    kinds = [kind for kind in MERGE_KINDS if rng.random() < 0.45]
    if need is not None and need not in kinds:
        kinds.append(need)
    if not kinds:
        kinds = [rng.choice(MERGE_KINDS)]
    return {kind: every[kind] for kind in kinds}
