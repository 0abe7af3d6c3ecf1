"""A built-in translation task: dates as people write them, in many formats and five
languages, to the ISO form (`samedi 3 avril 2021` -> `2021-04-03`).

Generated with `datetime` and a seeded `random.Random`, so it needs no download and every
machine draws the same pairs. It is a fair test of sequence-to-sequence models because:
every source names exactly one date (no format is ambiguous: `/` is always month-first,
`.` always day-first), so a perfect score is possible; getting there takes reordering
(day, month and year come in every order), lookup (month names in five languages, with
abbreviations and case changes, map to two digits), copying of digits across distant
positions, and ignoring distractors (weekdays, ordinals, articles); and no source string
appears twice, so the test split holds only sources the model has never seen.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta

MONTHS = {
    "en": "January February March April May June July August September October November December",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre "
    "diciembre",
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre "
    "novembre dicembre",
}
# Abbreviations where three letters would not do (juin / juillet).
SHORT = {"fr": "janv. févr. mars avr. mai juin juil. août sept. oct. nov. déc."}
WEEKDAYS = {  # Monday first, as date.weekday() counts
    "en": "Monday Tuesday Wednesday Thursday Friday Saturday Sunday",
    "fr": "lundi mardi mercredi jeudi vendredi samedi dimanche",
    "de": "Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag",
    "es": "lunes martes miércoles jueves viernes sábado domingo",
    "it": "lunedì martedì mercoledì giovedì venerdì sabato domenica",
}
FIRST, LAST = date(1900, 1, 1), date(2099, 12, 31)
NUMERIC_SHARE = 0.25  # of the sources written with digits only


def _ordinal(day: int) -> str:
    if day in (11, 12, 13):
        return f"{day}th"
    return f"{day}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th') }"


def _formats(d: date, lang: str) -> tuple[list[Callable[[], str]], list[Callable[[], str]]]:
    """Ways to write `d` in `lang` with words, and the numeric ones every language shares."""
    month = MONTHS[lang].split()[d.month - 1]
    short = month[:3] + ("." if lang != "en" else "")
    if lang in SHORT:
        short = SHORT[lang].split()[d.month - 1]
    weekday = WEEKDAYS[lang].split()[d.weekday()]
    day, year = d.day, d.year
    numeric = [
        lambda: f"{d.month:02d}/{day:02d}/{year}",
        lambda: f"{d.month}/{day}/{year}",
        lambda: f"{day:02d}.{d.month:02d}.{year}",
        lambda: f"{day}.{d.month}.{year}",
        lambda: f"{year}/{d.month:02d}/{day:02d}",
        lambda: f"{year}{d.month:02d}{day:02d}",
    ]
    words = {
        "en": [
            lambda: f"{month} {day}, {year}",
            lambda: f"{day} {month} {year}",
            lambda: f"{weekday}, {month} {day}, {year}",
            lambda: f"{short} {day} {year}",
            lambda: f"the {_ordinal(day)} of {month}, {year}",
            lambda: f"{_ordinal(day)} {short} {year}",
        ],
        "fr": [
            lambda: f"{day} {month} {year}",
            lambda: f"{weekday} {day} {month} {year}",
            lambda: f"le {'1er' if day == 1 else day} {month} {year}",
            lambda: f"{day} {short} {year}",
        ],
        "de": [
            lambda: f"{day}. {month} {year}",
            lambda: f"{weekday}, {day}. {month} {year}",
            lambda: f"am {day}. {short} {year}",
        ],
        "es": [
            lambda: f"{day} de {month} de {year}",
            lambda: f"{weekday}, {day} de {month} de {year}",
            lambda: f"{day} {short} {year}",
        ],
        "it": [
            lambda: f"{day} {month} {year}",
            lambda: f"{weekday} {day} {month} {year}",
            lambda: f"il {day} {short} {year}",
        ],
    }[lang]
    return words, numeric


def _write(d: date, rng: random.Random) -> str:
    lang = rng.choice(sorted(MONTHS))
    words, numeric = _formats(d, lang)
    text = rng.choice(numeric if rng.random() < NUMERIC_SHARE else words)()
    case = rng.random()
    if case < 0.1:
        return text.upper()
    if case < 0.2:
        return text.lower()
    return text


def generate_dates(count: int, seed: int) -> tuple[list[str], list[str]]:
    """`count` distinct (human-written date, ISO date) pairs drawn with `seed`."""
    rng = random.Random(seed)
    span = (LAST - FIRST).days
    sources: list[str] = []
    targets: list[str] = []
    seen: set[str] = set()
    while len(sources) < count:
        d = FIRST + timedelta(days=rng.randint(0, span))
        text = _write(d, rng)
        if text not in seen:
            seen.add(text)
            sources.append(text)
            targets.append(d.isoformat())
    return sources, targets
