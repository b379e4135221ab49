"""The German words of the people's pages (portal, /u/, /confirm/, the mails): one word per meaning, so that nobody
reads "abmelden" and wonders whether it signs them out or stops the newsletter. The translations in
subjects/portal/locale/de (which also hold the texts of consent/templates/consent) follow it, and
tests/portal/test_language.py holds every German text to it.

    English                        German                                   never
    sign in, sign-in link          anmelden, Anmeldung, Anmeldelink         (only for signing in to this centre)
    sign out, signed out           abmelden, abgemeldet                     (only for signing out)
    unsubscribe                    abbestellen, Newsletter abbestellen      abmelden, Abmeldelink
    unsubscribe link               Link zum Abbestellen                     Abmeldelink
    sign up (for a newsletter)     bestellen, eintragen; for double         anmelden, Anmeldung
                                   opt-in: die Einwilligung bestätigen
    consent, give, withdraw        Einwilligung, erteilen, widerrufen       Zustimmung zurückziehen
    object, objection              widersprechen, Widerspruch
    legitimate interest (badge)    Wir nutzen das / Widersprochen           Aktiv (beside "Ich widerspreche")
    channel                        Kanal, Kanäle                            Weg
    e-mail                         E-Mail, E-Mail-Adresse                   E-mail, Email
    data protection team / officer unser Datenschutzteam                    "unser Datenschutz" (lacks its noun)
    privacy centre                 Datenschutz-Center
    request (a right)              Antrag, beantragen
    correction                     Berichtigung, berichtigen
    erasure                        Löschung, löschen
    whatever you chose             gleich, was Sie gewählt haben            egal was
    save                           speichern

The forms of address is "Sie" throughout; quotation marks are „…“.
"""

from __future__ import annotations

import re

# Words a German text of these pages never uses, with the one it uses instead.
NEVER: dict[str, str] = {
    r"\bE-?mail\b": "E-Mail",
    r"Abmelde-?[Ll]ink": "Link zum Abbestellen",
    r"\bDatenschutz (prüft|freigegeben|gibt)": "unser Datenschutzteam",
    r"durch unseren Datenschutz\b": "durch unser Datenschutzteam",
    r"Datenschutz-Team": "Datenschutzteam",
    r"\begal,? was\b": "gleich, was",
    r"\bWege?\b": "Kanal, Kanäle",
}

# What an English text speaks of -> a stem its German text must hold, and stems it must not.
MEANINGS: tuple[tuple[re.Pattern[str], str, tuple[str, ...]], ...] = (
    (re.compile(r"unsubscrib", re.I), "abbestell", ("abmeld",)),
    (re.compile(r"sign(ed)? out", re.I), "abmeld", ("abbestell",)),
    (re.compile(r"sign(ed)?[ -]in\b", re.I), "anmeld", ("abmeld",)),
    (re.compile(r"sign(ed)?( you)? up|sign-up", re.I), "", ("anmeld", "abmeld")),
)


def glossary_breaches(english: str, german: str) -> list[str]:
    """What in one German text goes against the glossary; [] when it follows it."""
    found = [
        f"{german!r} uses {re.search(pattern, german)[0]!r}: say {instead!r}"  # type: ignore[index]
        for pattern, instead in NEVER.items()
        if re.search(pattern, german)
    ]
    for meaning, stem, never in MEANINGS:
        if not meaning.search(english):
            continue
        if stem and stem not in german.lower():
            found.append(f"{german!r} for {english!r} needs a form of {stem!r}")
        found.extend(f"{german!r} for {english!r} must not use {word!r}" for word in never if word in german.lower())
    return found
