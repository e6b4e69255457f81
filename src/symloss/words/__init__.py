"""The words symloss prints, one table per language; the mathematics is the same in every one.

Each language is a module here (:mod:`.en`, :mod:`.zh`) with two tables:

* ``WORDS``: every sentence and title the code prints, by key (``"title.chain_rule"``), as a
  ``str.format`` template. The code never holds an English sentence; it holds a
  :class:`Phrase` (a key and its parameters), which reads as English and renders in any language.
* ``SENTENCES`` (languages other than English): the catalogue's declarations say in English what a
  loss is (``loss_why``, ``canonical_why``, ...); this table gives each of those sentences in the
  language, keyed by the English sentence (as gettext does with its ``msgid``).

>>> from symloss.words import Phrase, say
>>> title = Phrase("title.chain_rule")
>>> title, say(title, "zh")
('Chain rule', '链式法则')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import import_module
from typing import Any

__all__ = ["LANGS", "Phrase", "check_lang", "say", "translate", "translate_lines", "untranslated", "word"]

#: The languages symloss speaks.
LANGS = ("en", "zh")

# A sentence ends at ". " (not after "i.e." or "e.g.").
_SENTENCE_END = re.compile(r"(?<!i\.e\.)(?<!e\.g\.)(?<=\.)\s+")


def check_lang(lang: str) -> str:
    """``lang`` if symloss speaks it, else a SymlossValueError naming the languages."""
    if lang not in LANGS:
        from ..errors import choice_error

        raise choice_error("language", lang, LANGS)
    return lang


def _module(lang: str) -> Any:
    return import_module(f"{__name__}.{check_lang(lang)}")


def word(key: str, lang: str = "en", **params: Any) -> str:
    """The text of ``key`` in ``lang``, its ``{placeholders}`` filled with ``params``.

    A parameter that is itself a phrase or a catalogue sentence is said in ``lang`` too.
    """
    template: str = _module(lang).WORDS[key]
    return template.format(**{k: say(v, lang) if isinstance(v, str) else v
                               for k, v in params.items()})


class Phrase(str):
    """A key of the word tables with its parameters; as a ``str`` it is the English text.

    Steps keep their titles and reasons as phrases, so the renderers can say them in any language
    while code and tests that read ``step.title`` see English.
    """

    key: str
    params: Mapping[str, Any]

    def __new__(cls, key: str, **params: Any) -> Phrase:
        obj = super().__new__(cls, word(key, "en", **params))
        obj.key = key
        obj.params = params
        return obj

    def __reduce__(self) -> Any:  # pickling and copying keep the key
        return (_phrase, (self.key, dict(self.params)))

    def say(self, lang: str) -> str:
        return word(self.key, lang, **self.params)


def _phrase(key: str, params: dict[str, Any]) -> Phrase:
    return Phrase(key, **params)


def translate(text: str, lang: str) -> str:
    """A catalogue sentence (English) in ``lang``, sentence by sentence.

    A sentence the language's ``SENTENCES`` table lacks stays English (tests/test_zh.py keeps
    the table complete for every catalogue loss).
    """
    if check_lang(lang) == "en" or not text:
        return text
    table: Mapping[str, str] = _module(lang).SENTENCES
    if text in table:
        return table[text]
    parts = _SENTENCE_END.split(text)
    if len(parts) == 1:
        return text
    return _module(lang).SENTENCE_JOIN.join(translate(p, lang) for p in parts)


def say(text: str, lang: str = "en") -> str:
    """``text`` in ``lang``: a :class:`Phrase` by its key, any other text by :func:`translate`."""
    if isinstance(text, Phrase):
        return text.say(lang)
    return translate(text, lang)


def untranslated(text: str, lang: str) -> list[str]:
    """The sentences of ``text`` that ``lang``'s ``SENTENCES`` table does not have."""
    if check_lang(lang) == "en" or isinstance(text, Phrase) or " " not in text:
        return []  # a name (var, sigmoid, x[j]) is said as it is
    table: Mapping[str, str] = _module(lang).SENTENCES
    if text in table:
        return []
    parts = _SENTENCE_END.split(text)
    if len(parts) == 1:
        return [text]
    return [missing for part in parts for missing in untranslated(part, lang)]


def translate_lines(text: str, lang: str) -> str:
    """A report printed in English (``symloss check``'s), line by line, in ``lang``.

    The language's ``LINES`` table holds ``(pattern, template)`` pairs: a line (its indentation
    kept) that matches a pattern is written with the template, each ``{n}`` filled with the
    n-th group, itself said in ``lang`` when it matches a pattern too (a likely cause inside
    ``likely cause: …``). Numbers, names and case labels stay as they are.
    """
    if check_lang(lang) == "en":
        return text
    patterns = _patterns(lang)

    def one(piece: str) -> str:
        for pattern, template in patterns:
            m = pattern.fullmatch(piece)
            if m:
                return template.format(*(one(g) if g else "" for g in m.groups()))
        return piece

    out = []
    for line in text.split("\n"):
        body = line.lstrip(" ")
        out.append(line[: len(line) - len(body)] + one(body))
    return "\n".join(out)


def _patterns(lang: str) -> list[tuple[re.Pattern[str], str]]:
    cache = _PATTERNS.setdefault(lang, [])
    if not cache:
        cache += [(re.compile(p), t) for p, t in _module(lang).LINES]
    return cache


_PATTERNS: dict[str, list[tuple[re.Pattern[str], str]]] = {}
