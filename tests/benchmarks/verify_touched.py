"""After the writes: verify the hash chain and chain head of every subject that got an event since a moment
(`verify_ledger` walks all 1,000,000 subjects, too slow for a benchmark run). Prints one JSON line.

    python -m tests.benchmarks.verify_touched SINCE_ISO [LIMIT]   (with the Django environment set)"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime


def main(since: str, limit: int) -> None:
    import django

    django.setup()
    from consent.ledger.chain import ledger_verify_subject
    from consent.models import ConsentEvent, LedgerHead
    from subjects.models import Subject

    started = time.perf_counter()
    moment = datetime.fromisoformat(since)
    events = ConsentEvent.objects.filter(recorded_at__gte=moment)
    event_count = events.count()
    ids = list(events.values_list("subject_id", flat=True).distinct()[:limit])
    heads = {h.subject_id: h for h in LedgerHead.objects.filter(subject_id__in=ids)}
    problems = []
    for subject in Subject.objects.filter(pk__in=ids).iterator(chunk_size=1000):
        problems.extend(str(p) for p in ledger_verify_subject(subject, heads.get(subject.pk)))
    print(
        json.dumps(
            {
                "events": event_count,
                "subjects": len(ids),
                "problems": len(problems),
                "first_problems": problems[:5],
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 50_000)
