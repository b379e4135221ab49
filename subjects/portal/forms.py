"""The portal's forms: they parse and validate; the views hand the result to one service."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from subjects.errors import InvalidIdentifierError
from subjects.identity import normalise
from subjects.portal.selectors import ContactData, Preferences
from subjects.portal.services import Wanted
from subjects.rights.details import RESTRICTION_GROUNDS

SWITCH = {"class": "switch", "role": "switch"}


class SigninForm(forms.Form):
    email = forms.CharField(
        label=_("Your e-mail address"),
        max_length=320,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email", "spellcheck": "false"}),
    )

    def clean_email(self) -> str:
        try:
            return normalise("email", self.cleaned_data["email"])
        except InvalidIdentifierError:
            raise forms.ValidationError(_("Please enter a valid e-mail address."), code="invalid") from None


def consent_field(purpose: str, channel: str) -> str:
    return f"consent:{purpose}:{channel}"


def notice_field(purpose: str) -> str:
    return f"notice:{purpose}"


def objection_field(purpose: str) -> str:
    return f"object:{purpose}"


def _saved(on: bool) -> str:
    """The switch's saved position, for the style sheet (badges that say what saving will do, even after a form
    came back with an error) and for the save bar's count of unsaved changes."""
    return "on" if on else "off"


class PreferencesForm(forms.Form):
    """One switch per consent purpose and channel (off until chosen), one objection switch per legitimate-interest
    purpose, and "no marketing at all". An objection in force shows as a disabled, switched-on field: the portal
    records objections, it does not lift them."""

    def __init__(self, *args: Any, preferences: Preferences, locked: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.preferences = preferences
        for purpose in preferences.consent:
            for channel in purpose.channels:
                self.fields[consent_field(purpose.key, channel.key)] = forms.BooleanField(
                    required=False,
                    initial=channel.on,
                    label=channel.name,
                    disabled=locked,
                    widget=forms.CheckboxInput(
                        attrs={
                            **SWITCH,
                            "aria-describedby": f"state-{purpose.key}-{channel.key}",
                            "data-saved": _saved(channel.on),
                        }
                    ),
                )
            self.fields[notice_field(purpose.key)] = forms.CharField(
                required=False, initial=purpose.notice_version or "", widget=forms.HiddenInput, max_length=64
            )
        for purpose in preferences.legitimate_interest:
            objected = purpose.objected_since is not None or (
                purpose.marketing and preferences.no_marketing_since is not None
            )
            self.fields[objection_field(purpose.key)] = forms.BooleanField(
                required=False,
                initial=objected,
                disabled=locked or objected,
                label=_("I object to this"),
                widget=forms.CheckboxInput(
                    attrs={**SWITCH, "aria-describedby": f"state-{purpose.key}", "data-saved": _saved(objected)}
                ),
            )
        self.fields["no_marketing"] = forms.BooleanField(
            required=False,
            initial=preferences.no_marketing_since is not None,
            disabled=locked or preferences.no_marketing_since is not None,
            label=_("No marketing at all"),
            widget=forms.CheckboxInput(
                attrs={
                    **SWITCH,
                    "aria-describedby": "state-no-marketing",
                    "data-saved": _saved(preferences.no_marketing_since is not None),
                }
            ),
        )

    def wanted(self) -> Wanted:
        data = self.cleaned_data
        consents = frozenset(
            (purpose.key, channel.key)
            for purpose in self.preferences.consent
            for channel in purpose.channels
            if data.get(consent_field(purpose.key, channel.key))
        )
        notices = {p.key: data.get(notice_field(p.key)) or "" for p in self.preferences.consent}
        objections = frozenset(p.key for p in self.preferences.legitimate_interest if data.get(objection_field(p.key)))
        return Wanted(consents, notices, objections, bool(data.get("no_marketing")))


class CopyForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("What kind of copy?"),
        choices=[
            ("access", _("A copy of my data with the information about its use (Art. 15 GDPR)")),
            ("portability", _("My data in a machine-readable form, to take it elsewhere (Art. 20 GDPR)")),
        ],
        initial="access",
        widget=forms.RadioSelect,
    )


class ErasureForm(forms.Form):
    confirm = forms.BooleanField(
        label=_("I understand that my data will be erased and cannot be restored, and what is kept and why."),
        error_messages={"required": _("Please tick the box to confirm.")},
    )


class RestrictionForm(forms.Form):
    ground = forms.ChoiceField(
        label=_("Why should we restrict the processing?"),
        choices=list(
            zip(
                RESTRICTION_GROUNDS,
                [
                    _("I contest that my data is accurate (while you check it) - Art. 18(1)(a)"),
                    _("The processing is unlawful, but I want restriction instead of erasure - Art. 18(1)(b)"),
                    _("You no longer need the data, but I need it for legal claims - Art. 18(1)(c)"),
                    _("I objected, and you are checking whether your grounds override mine - Art. 18(1)(d)"),
                ],
                strict=True,
            )
        ),
        widget=forms.RadioSelect,
    )


class ObjectionForm(forms.Form):
    def __init__(self, *args: Any, purposes: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["scope"] = forms.ChoiceField(
            label=_("What do you object to?"),
            choices=[
                ("direct_marketing", _("All direct marketing, on every channel (Art. 21(2) and (3) GDPR)")),
                *[(f"purpose:{key}", name) for key, name in purposes],
            ],
            widget=forms.RadioSelect,
        )

    def details(self) -> dict[str, str]:
        scope: str = self.cleaned_data["scope"]
        if scope == "direct_marketing":
            return {"scope": "direct_marketing"}
        return {"purpose": scope.removeprefix("purpose:")}


EMAIL, PHONE = "email", "phone"


class RectificationForm(forms.Form):
    """The person's e-mail address, phone number and the text attributes of their profile, prefilled with what is
    on file. A new address or number changes nothing yet: its owner confirms it first (a link, an SMS code); the
    profile fields that change go into a rectification request."""

    def __init__(self, *args: Any, contact: ContactData, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.contact = contact
        emails = contact.identifiers.get(EMAIL, [])
        self.current = {
            EMAIL: email if email in emails else (emails[0] if emails else ""),
            PHONE: (contact.identifiers.get(PHONE) or [""])[0],
        }
        self.fields[EMAIL] = forms.CharField(
            label=_("E-mail address"),
            required=False,
            initial=self.current[EMAIL],
            max_length=320,
            widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email", "spellcheck": "false"}),
        )
        self.fields[PHONE] = forms.CharField(
            label=_("Phone number"),
            required=False,
            initial=self.current[PHONE],
            max_length=40,
            widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
        )
        for name, value in sorted(contact.profile.items()):
            self.fields[f"profile:{name}"] = forms.CharField(
                label=name.replace("_", " ").capitalize(), required=False, initial=value, max_length=500
            )
        self.fields["note"] = forms.CharField(
            label=_("Anything we should know (optional)"),
            required=False,
            max_length=1000,
            widget=forms.Textarea(attrs={"rows": 3}),
        )

    def clean_email(self) -> str:
        value: str = self.cleaned_data.get(EMAIL, "").strip()
        if value:
            try:
                return normalise(EMAIL, value)
            except InvalidIdentifierError:
                raise forms.ValidationError(_("Please enter a valid e-mail address."), code="invalid") from None
        return value

    def clean_phone(self) -> str:
        value: str = self.cleaned_data.get(PHONE, "").strip()
        if value:
            try:
                return normalise(PHONE, value)
            except InvalidIdentifierError:
                raise forms.ValidationError(_("Please enter a valid phone number."), code="invalid") from None
        return value

    def address_changes(self) -> dict[str, str]:
        """The new e-mail address and phone number asked for (each confirmed by its owner before it counts)."""
        data = self.cleaned_data
        return {kind: data[kind] for kind in (EMAIL, PHONE) if data.get(kind) and data[kind] != self.current[kind]}

    def details(self) -> dict[str, Any]:
        """The rectification request's details: the profile fields that change."""
        data = self.cleaned_data
        profile: dict[str, str | None] = {}
        for name, value in self.contact.profile.items():
            new = (data.get(f"profile:{name}") or "").strip()
            if new != value:
                profile[name] = new or None  # emptied: the attribute is removed
        details: dict[str, Any] = {}
        if profile:
            details["profile"] = profile
        if details and data.get("note"):
            details["evidence"] = {"note": data["note"]}
        return details

    def refuse(self, kind: str) -> None:
        """The address belongs to someone else: say so without saying whose."""
        message = _("This address cannot be used.") if kind == EMAIL else _("This number cannot be used.")
        self.add_error(kind, forms.ValidationError(message, code="refused"))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.errors and not self.details() and not self.address_changes():
            raise forms.ValidationError(_("You have not changed anything."), code="unchanged")
        return cleaned


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code from the SMS"),
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
