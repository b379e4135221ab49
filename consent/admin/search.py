"""Searches for people in the admin: the term stays on the server (PrivateSearchAdmin), and read-only logs are
searched by the subject's id only (SubjectLogAdmin)."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import PAGE_VAR, SEARCH_VAR, ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy

from consent.admin.audit import Action, audit_record
from consent.admin.bases import ReadOnlyAdmin
from subjects.selectors import subject_ids_for_term, subject_with_absorbed

# ---------------------------------------------------------------------------------------------------------
# Searches for people: the term stays on the server
# ---------------------------------------------------------------------------------------------------------
SEARCH_TOKEN_VAR = "qt"
_SEARCH_MARK = "_assent_search"
_SEARCHES = "assent_admin_searches"
_SEARCHES_KEPT = 20
_SEARCH_SECONDS = 3600  # a search's term is kept (in the session, on the server) for an hour at most


class PrivateSearchChangeList(ChangeList):
    """A change list whose search term comes from the session (by the `qt` token), never from the URL: its links
    (filters, sorting, pages) carry the token, and `qt` is not mistaken for a field lookup."""

    def get_filters_params(self, params: Any = None) -> Any:
        lookup_params = super().get_filters_params(params)
        lookup_params.pop(SEARCH_TOKEN_VAR, None)
        return lookup_params

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> Any:
        self.query = getattr(request, "assent_search_term", "")
        return super().get_queryset(request, exclude_parameters)


class PrivateSearchAdmin(ReadOnlyAdmin):
    """A change list searched for a person (an e-mail, a phone, a subject id): the search is a POST, its term is
    kept in the staff member's session under a random token and the list is shown at `?qt=<token>`, so the term
    never reaches a URL, a browser history or an access log. Each search is audited like a view, saying what kind
    of term it was, never the term. A `?q=` in the URL is refused (the list, unsearched, with a message)."""

    change_list_template = "assent_admin/private_search_change_list.html"

    def search_kind(self, term: str) -> str:
        """What was searched by, in words that hold nothing of the term (overridden where kinds can be told)."""
        return "subject id" if uuid_or_none(term) is not None else "identifier"

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return PrivateSearchChangeList

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST" and _SEARCH_MARK in request.POST:
            if not self.has_view_or_change_permission(request):
                raise PermissionDenied
            return self._search(request, request.POST.get(SEARCH_VAR, ""))
        if SEARCH_VAR in request.GET:
            messages.warning(request, "Please search with the search box: a term in the address would be logged.")
            return redirect(self._list_url(request, token=None))
        term = ""
        token = request.GET.get(SEARCH_TOKEN_VAR)
        if token is not None:
            term = _searches(request).get(token, {}).get("term", "")
            if not term:
                messages.info(request, "That search is no longer available; please search again.")
                return redirect(self._list_url(request, token=None))
        request.assent_search_term = term  # type: ignore[attr-defined]
        context = {**(extra_context or {}), "assent_search_term": term, "assent_search_mark": _SEARCH_MARK}
        return super().changelist_view(request, context)

    def _search(self, request: HttpRequest, term: str) -> HttpResponse:
        term = term.strip()[:256]
        if not term:
            return redirect(self._list_url(request, token=None))
        audit_record(
            user=request.user,
            action=Action.VIEW,
            object_type=self.opts.label_lower,
            detail=f"search by {self.search_kind(term)}",
        )
        token = secrets.token_urlsafe(16)
        searches = _searches(request)
        searches[token] = {"term": term, "at": int(time.time())}
        request.session[_SEARCHES] = dict(list(searches.items())[-_SEARCHES_KEPT:])
        return redirect(self._list_url(request, token=token))

    def _list_url(self, request: HttpRequest, *, token: str | None) -> str:
        params = request.GET.copy()
        for name in (SEARCH_VAR, SEARCH_TOKEN_VAR, PAGE_VAR):
            params.pop(name, None)
        if token is not None:
            params[SEARCH_TOKEN_VAR] = token
        query = params.urlencode()
        return request.path + (f"?{query}" if query else "")


def _searches(request: HttpRequest) -> dict[str, dict[str, Any]]:
    """The session's recent searches by token, without those older than an hour."""
    kept = request.session.get(_SEARCHES)
    if not isinstance(kept, dict):
        return {}
    oldest = time.time() - _SEARCH_SECONDS
    return {
        token: entry
        for token, entry in kept.items()
        if isinstance(entry, dict) and isinstance(entry.get("at"), int) and entry["at"] >= oldest
    }


def uuid_or_none(term: str) -> uuid.UUID | None:
    """The UUID a search term spells (surrounding spaces ignored), or None."""
    try:
        return uuid.UUID(term.strip())
    except ValueError:
        return None


def subject_link(subject_id: uuid.UUID | None, *, short: bool = False, missing: str = "-") -> str:
    """A link to the subject's admin page, labelled with the id (its first 8 characters if short)."""
    if subject_id is None:
        return missing
    url = reverse("admin:subjects_subject_change", args=[subject_id])
    return format_html('<a href="{}">{}</a>', url, str(subject_id)[:8] if short else str(subject_id))


class SubjectLogAdmin(PrivateSearchAdmin):
    """A read-only log searched for one person: by the subject's id, or by an identifier exactly as the person
    gives it, found through the blind index (nothing decrypted, nothing scanned). The subjects merged into the
    person are found too: their closed chains are the same person's."""

    search_fields = ("subject__id",)
    search_help_text = gettext_lazy(
        "An identifier exactly as the person gives it (e-mail, phone, customer number ...) or a subject id."
    )

    @admin.display(description="subject")
    def subject_ref(self, obj: Any) -> str:
        return subject_link(obj.subject_id)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if not search_term.strip():
            return queryset, False
        found = subject_ids_for_term(search_term)
        people = {member for subject_id in found for member in subject_with_absorbed(subject_id=subject_id)}
        return queryset.filter(subject_id__in=people), False
