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

# Word stems, with their past participles (angemeldet, abgemeldet, abbestellt) and, for anmelden, the split verb
# of a main clause ("Melden Sie sich hier an").
SIGN_IN = r"an(ge)?meld|\bmeld\w*\b[^.:;]*\ban\b"
SIGN_OUT = r"ab(ge)?meld"
UNSUBSCRIBE = r"abbestell"
WORDS = {SIGN_IN: "anmelden", SIGN_OUT: "abmelden", UNSUBSCRIBE: "abbestellen"}

# What an English text speaks of -> a stem its German text must hold ("" for none), and stems it must not.
MEANINGS: tuple[tuple[re.Pattern[str], str, tuple[str, ...]], ...] = (
    (re.compile(r"unsubscrib", re.I), UNSUBSCRIBE, (SIGN_OUT,)),
    (re.compile(r"sign(ed)? out", re.I), SIGN_OUT, (UNSUBSCRIBE,)),
    (re.compile(r"sign(ed|ing)?[ -]in\b", re.I), SIGN_IN, (SIGN_OUT,)),
    (re.compile(r"sign(ed)?( you)? up|sign-up", re.I), "", (SIGN_IN, SIGN_OUT)),
)


def glossary_breaches(english: str, german: str) -> list[str]:
    """What in one German text goes against the glossary; [] when it follows it."""
    found = [
        f"{german!r} uses {match[0]!r}: say {instead!r}"
        for pattern, instead in NEVER.items()
        if (match := re.search(pattern, german))
    ]
    lowered = german.lower()
    for meaning, stem, never in MEANINGS:
        if not meaning.search(english):
            continue
        if stem and not re.search(stem, lowered):
            found.append(f"{german!r} for {english!r} needs a form of {WORDS[stem]!r}")
        found.extend(f"{german!r} for {english!r} must not use {WORDS[w]!r}" for w in never if re.search(w, lowered))
    return found
