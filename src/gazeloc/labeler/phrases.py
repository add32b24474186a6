"""The phrase language of the rule files, a tokenizer that keeps raw offsets, and a matcher.

A phrase is a sequence of words separated by spaces (see ``rules/README.md``):

* ``word``      -- that word (case-insensitive; hyphens and slashes in text split words);
* ``stem*``     -- any word that starts with ``stem``;
* ``(a|b c)``   -- one of the alternatives, each itself a short phrase (no nesting);
* ``word?`` / ``(a|b)?`` -- optional;
* ``...``       -- up to three words (never punctuation) in between;
* ``,`` ``;`` ``:`` -- that punctuation mark.

Phrases are expanded into plain element sequences when a rule file is loaded and indexed by
their first element, so matching a report costs a few dictionary look-ups per token.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

GAP_WORDS = 3
"""Words that ``...`` may skip."""

_CACHE_SIZE = 50_000
"""Distinct first tokens whose trie start nodes a phrase set remembers."""

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)*|[,;:?!()/&]|\.(?![a-z0-9])")
_WORDISH = re.compile(r"[a-z0-9]")
_TOKEN_NORM = {"/": "or", "&": "and"}
_PUNCT = frozenset(",;:?!().")


def lower_same_length(text: str) -> str:
    """Lower-case ``text`` character by character, keeping every offset (``’`` -> ``'``)."""
    low = text.lower()
    if len(low) != len(text):  # a few non-ASCII letters change length when lowered
        low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return low.replace("\u2019", "'")


@dataclass(frozen=True)
class Tokens:
    """Tokens of a text: normalised form, ``[start, end)`` character offsets, punctuation flag.

    ``norm`` is lower case; ``/`` reads as ``or`` and ``&`` as ``and`` (both count as words).
    A ``.`` is a token only where it ends a sentence (not before a letter or digit).
    """

    norm: tuple[str, ...]
    start: tuple[int, ...]
    end: tuple[int, ...]
    punct: tuple[bool, ...]

    def __len__(self) -> int:
        return len(self.norm)


def tokenize(text: str) -> Tokens:
    """Split ``text`` into word and punctuation tokens with offsets into ``text``."""
    low = lower_same_length(text)
    norm: list[str] = []
    start: list[int] = []
    end: list[int] = []
    punct: list[bool] = []
    for m in _TOKEN.finditer(low):
        tok = m.group()
        norm.append(_TOKEN_NORM.get(tok, tok))
        start.append(m.start())
        end.append(m.end())
        punct.append(tok in _PUNCT)
    return Tokens(tuple(norm), tuple(start), tuple(end), tuple(punct))


# --- phrase parsing -------------------------------------------------------------------------

# An element is ("w", word) exact, ("p", stem) prefix, or ("g", n) a gap of 0..n words.
Element = tuple[str, object]

_PART = re.compile(r"\(([^()]*)\)(\?)?|(\.\.\.)|([^\s()]+)")


class PhraseError(ValueError):
    """A phrase that does not follow the phrase language."""


def _word_elements(word: str) -> list[Element]:
    """Elements of one written word (a hyphenated word gives several)."""
    if word in (",", ";", ":", "?", "!"):
        return [("w", word)]
    if word in ("/", "&"):
        return [("w", _TOKEN_NORM[word])]
    prefix = word.endswith("*")
    body = word[:-1] if prefix else word
    pieces = [p for p in re.split(r"[-/]", body.lower()) if p]
    if not pieces or any(not _TOKEN.fullmatch(p) or not _WORDISH.search(p) for p in pieces):
        raise PhraseError(f"bad word '{word}'")
    out: list[Element] = [("w", p) for p in pieces]
    if prefix:
        out[-1] = ("p", pieces[-1])
    return out


def _alternative(text: str) -> list[Element]:
    out: list[Element] = []
    for word in text.split():
        out.extend(_word_elements(word))
    return out


def expand(phrase: str) -> list[tuple[Element, ...]]:
    """All element sequences a phrase stands for (alternatives and optionals expanded)."""
    slots: list[list[list[Element]]] = []
    pos = 0
    text = phrase.strip()
    if not text:
        raise PhraseError("empty phrase")
    for m in _PART.finditer(text):
        if text[pos : m.start()].strip():
            raise PhraseError(f"cannot read '{text[pos : m.start()]}' in '{phrase}'")
        pos = m.end()
        group, optional, gap, word = m.groups()
        if gap:
            slots.append([[("g", GAP_WORDS)]])
        elif group is not None:
            alts = [_alternative(a) for a in group.split("|")]
            if any(not a for a in alts):
                raise PhraseError(f"empty alternative in '{phrase}'")
            if optional:
                alts.append([])
            slots.append(alts)
        else:
            opt = word.endswith("?") and len(word) > 1
            elems = _word_elements(word[:-1] if opt else word)
            slots.append([elems, []] if opt else [elems])
    if text[pos:].strip():
        raise PhraseError(f"cannot read '{text[pos:]}' in '{phrase}'")
    sequences = []
    for combo in itertools.product(*slots):
        seq = tuple(e for part in combo for e in part)
        if not seq:
            continue
        if seq[0][0] == "g" or seq[-1][0] == "g":
            raise PhraseError(f"'...' cannot start or end a phrase: '{phrase}'")
        if any(a[0] == "g" and b[0] == "g" for a, b in itertools.pairwise(seq)):
            raise PhraseError(f"two '...' in a row: '{phrase}'")
        sequences.append(seq)
    if not sequences:
        raise PhraseError(f"phrase matches nothing: '{phrase}'")
    return sequences


# --- matching -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match(Generic[T]):
    """A phrase matched on tokens ``[start, end)`` (token indices), with its payload."""

    start: int
    end: int
    payload: T


class _Node:
    """A trie node: children by exact word, by stem (grouped by stem length), and by gap."""

    __slots__ = ("exact", "gaps", "payloads", "prefix")

    def __init__(self) -> None:
        self.exact: dict[str, _Node] = {}
        self.prefix: dict[int, dict[str, _Node]] = {}
        self.gaps: dict[int, _Node] = {}
        self.payloads: list = []

    def child(self, element: Element) -> _Node:
        kind, value = element
        if kind == "w":
            return self.exact.setdefault(str(value), _Node())
        if kind == "p":
            stem = str(value)
            return self.prefix.setdefault(len(stem), {}).setdefault(stem, _Node())
        return self.gaps.setdefault(int(value), _Node())  # type: ignore[call-overload]


class PhraseSet(Generic[T]):
    """Phrases with payloads, compiled into a trie of their expanded element sequences."""

    def __init__(self, entries: Iterable[tuple[str, T]] = ()) -> None:
        self._root = _Node()
        self._first_nodes: dict[str, tuple[_Node, ...]] = {}
        self.size = 0
        for phrase, payload in entries:
            self.add(phrase, payload)

    def add(self, phrase: str, payload: T) -> None:
        """Add a phrase (raises :class:`PhraseError` if it is malformed)."""
        for seq in expand(phrase):
            node = self._root
            for element in seq:
                node = node.child(element)
            if payload not in node.payloads:
                node.payloads.append(payload)
            self.size += 1
        self._first_nodes.clear()

    @staticmethod
    def _walk(node: _Node, tokens: Tokens, i: int, out: dict[tuple[object, int], None]) -> None:
        for payload in node.payloads:
            out[(payload, i)] = None
        n = len(tokens.norm)
        if i < n:
            tok = tokens.norm[i]
            nxt = node.exact.get(tok)
            if nxt is not None:
                PhraseSet._walk(nxt, tokens, i + 1, out)
            if node.prefix and not tokens.punct[i]:
                for length, table in node.prefix.items():
                    if len(tok) >= length:
                        nxt = table.get(tok[:length])
                        if nxt is not None:
                            PhraseSet._walk(nxt, tokens, i + 1, out)
        for size, nxt in node.gaps.items():
            j = i
            for _ in range(size + 1):
                PhraseSet._walk(nxt, tokens, j, out)
                if j >= n or tokens.punct[j]:
                    break
                j += 1

    def _starts(self, tok: str, is_punct: bool) -> tuple[_Node, ...]:
        """Trie nodes reached by a first token (exact word, then matching stems)."""
        root = self._root
        nodes = []
        first = root.exact.get(tok)
        if first is not None:
            nodes.append(first)
        if not is_punct:
            for length, table in root.prefix.items():
                if len(tok) >= length:
                    hit = table.get(tok[:length])
                    if hit is not None:
                        nodes.append(hit)
        return tuple(nodes)

    def find_all(self, tokens: Tokens) -> list[Match[T]]:
        """Every (start, phrase) match, each with its longest end, in token order."""
        out: list[Match[T]] = []
        norm, punct = tokens.norm, tokens.punct
        cache = self._first_nodes
        for i, tok in enumerate(norm):
            nodes = cache.get(tok)
            if nodes is None:
                nodes = self._starts(tok, punct[i])
                if len(cache) < _CACHE_SIZE:
                    cache[tok] = nodes
            if not nodes:
                continue
            found: dict[tuple[object, int], None] = {}
            for node in nodes:
                self._walk(node, tokens, i + 1, found)
            longest: dict[object, int] = {}
            for payload, end in found:
                if end > longest.get(payload, -1):
                    longest[payload] = end
            for payload, end in longest.items():
                out.append(Match(i, end, payload))  # type: ignore[arg-type]
        return out

    def find_longest(self, tokens: Tokens, rank: dict[T, int] | None = None) -> list[Match[T]]:
        """Non-overlapping matches, left to right, the longest at each position.

        Ties in length go to the payload with the smallest ``rank`` (then the first added).
        """
        by_start: dict[int, list[Match[T]]] = {}
        for m in self.find_all(tokens):
            by_start.setdefault(m.start, []).append(m)
        out: list[Match[T]] = []
        i = 0
        n = len(tokens)
        while i < n:
            cands = by_start.get(i)
            if not cands:
                i += 1
                continue
            best = cands[0]
            for m in cands[1:]:
                longer = m.end > best.end
                tie = m.end == best.end and rank is not None
                if longer or (tie and rank.get(m.payload, 0) < rank.get(best.payload, 0)):
                    best = m
            out.append(best)
            i = best.end
        return out
