"""The catalogue and demo commands: parse, delegate, report; a clear error and a non-zero exit on bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from consent.catalogue.snapshot import catalogue_forget
from consent.models import ApiClient, CatalogueRevision, ConsentEvent, Purpose
from subjects.models import LinkedRecord, Subject
from tests.catalogue import validation_catalogue

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    finally:
        catalogue_forget()  # on_commit does not fire inside the test's transaction
    return out.getvalue(), err.getvalue()


def write(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_it_applies_a_file_and_prints_the_changes(db: None, tmp_path: Path) -> None:
    out, err = run("apply_catalog", write(tmp_path, validation_catalogue()))

    revision = CatalogueRevision.objects.get()
    lines = out.splitlines()
    assert "channel email: added" in lines
    assert "purpose newsletter: notice 2026-01 added" in lines
    assert lines[-1] == f"catalogue revision {revision.pk} applied"
    assert err == ""
    assert Purpose.objects.count() == 4


def test_a_second_run_reports_the_catalogue_unchanged(db: None, tmp_path: Path) -> None:
    path = write(tmp_path, validation_catalogue())
    run("apply_catalog", path)

    out, _ = run("apply_catalog", path)

    revision = CatalogueRevision.objects.get()
    assert out.splitlines() == [f"catalogue unchanged (revision {revision.pk})"]


def test_it_prints_every_problem_and_exits_non_zero_on_a_bad_document(db: None, tmp_path: Path) -> None:
    document = validation_catalogue()
    document["purposes"][0]["legal_basis"] = "maybe"
    document["purposes"][1]["channels"].append("phone")
    err = io.StringIO()

    with pytest.raises(CommandError) as caught:
        call_command("apply_catalog", write(tmp_path, document), stdout=io.StringIO(), stderr=err)

    assert str(caught.value) == "catalogue not applied: 2 problem(s)"
    assert caught.value.returncode == 1
    assert err.getvalue().splitlines() == [
        "purposes[0].legal_basis: 'maybe' is not one of consent, legitimate_interest, contract, legal_obligation",
        "purposes[1].channels[2]: legitimate-interest marketing may never call: advertising calls need the person's "
        "prior express consent (UWG §7(2) Nr. 1)",
    ]
    assert not CatalogueRevision.objects.exists()
    assert not Purpose.objects.exists()


def test_it_fails_on_a_file_that_is_not_json(db: None, tmp_path: Path) -> None:
    path = tmp_path / "catalogue.json"
    path.write_text('{"channels": [', encoding="utf-8")
    err = io.StringIO()

    with pytest.raises(CommandError, match=r"^catalogue not applied: 1 problem\(s\)$"):
        call_command("apply_catalog", str(path), stdout=io.StringIO(), stderr=err)

    assert err.getvalue().strip() == f"{path}: not valid JSON at line 1 column 15 (Expecting value)"


def test_it_fails_on_a_missing_file(db: None, tmp_path: Path) -> None:
    err = io.StringIO()

    with pytest.raises(CommandError, match=r"^catalogue not applied: 1 problem\(s\)$"):
        call_command("apply_catalog", str(tmp_path / "nope.json"), stdout=io.StringIO(), stderr=err)

    assert err.getvalue().strip() == f"{tmp_path / 'nope.json'}: no such file"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such file"),
        ("not json", "not valid JSON at line 1 column 1 (Expecting value)"),
    ],
)
def test_the_process_exits_with_status_1_and_names_the_problem(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "catalogue.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")

    # A real process: the exit status is what a deploy script sees. It fails before touching a database.
    done = subprocess.run(
        [sys.executable, "manage.py", "apply_catalog", str(path)],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert f"{path}: {problem}" in done.stderr.splitlines()
    assert "CommandError: catalogue not applied: 1 problem(s)" in done.stderr


def test_load_demo_is_idempotent_and_shows_its_secrets_once(db: None) -> None:
    first, _ = run("load_demo")
    subjects, events = Subject.objects.count(), ConsentEvent.objects.count()

    second, _ = run("load_demo")

    assert subjects == 8  # the records linked to the customers they name: nobody new
    assert events == 18
    # the two customers the demo banner names have records from several of the shop's systems
    by_subject = {
        subject: set(LinkedRecord.objects.filter(subject_id=subject).values_list("source", flat=True))
        for subject in LinkedRecord.objects.values_list("subject_id", flat=True).distinct()
    }
    assert sorted(len(sources) for sources in by_subject.values()) == [3, 4]
    assert LinkedRecord.objects.count() == 11
    assert (Subject.objects.count(), ConsentEvent.objects.count()) == (subjects, events)
    assert CatalogueRevision.objects.count() == 1
    assert get_user_model().objects.filter(username="admin", is_superuser=True).count() == 1
    assert ApiClient.objects.filter(name="demo").count() == 1
    assert "8 demo customers added with 18 consent events" in first
    assert "  Admin login:     admin / " in first
    assert "  API key:         ast_" in first
    assert "  Portal:          http://testserver/portal/" in first
    assert "catalogue unchanged" in second
    assert "demo customers are there already; nothing added" in second
    assert "user 'admin' exists; set a new password with `python manage.py changepassword admin`" in second
    assert "client 'demo' exists" in second
    assert "ast_" not in second
