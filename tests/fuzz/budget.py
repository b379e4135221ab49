"""How much to fuzz: `make test` runs a small derandomized (fixed-seed) budget; `make fuzz` sets ASSENT_FUZZ=full
for the large one with fresh seeds. Every generated case is counted, and the count printed at the end of the run."""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, Phase, settings

FULL = os.environ.get("ASSENT_FUZZ") == "full"

# Cases per schemathesis operation test, per stateful run, and per form; the full form is above 2,000 in total.
OPERATION_EXAMPLES = 150 if FULL else 12
STATEFUL_EXAMPLES = 60 if FULL else 5
STATEFUL_STEPS = 50 if FULL else 10
FORM_EXAMPLES = 60 if FULL else 8

COUNTS: Counter[str] = Counter()  # "api", "api-stateful", "portal", "admin": cases actually sent
STATUSES: Counter[int] = Counter()  # the status codes they were answered with


def fuzz_settings(max_examples: int, *, steps: int = 50) -> settings:
    """Derandomized (a seed fixed by the test) in the reduced run, so `make test` fails the same way every time;
    random in the full run, which should keep finding new cases. No deadline: a shared 2-core machine is slow."""
    return settings(
        max_examples=max_examples,
        derandomize=not FULL,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
        print_blob=True,
        stateful_step_count=steps,
    )
