"""Sentences and mention times of a dictated report (reference-method.md §3.2–3.3).

Inputs: the report as ``transcription.txt`` holds it (first line) and the rows of
``timestamps_transcription.csv`` (``word, timestamp_start_word, timestamp_end_word``; seconds
from the audio start), plus the labeler's mentions as ``[start, end)`` character offsets into
the raw report.

Tokens and characters. REFLACX tokenises a report as ``text.replace(".", " .")
.replace(",", " ,").split(" ")`` (:func:`gazeloc.io.reflacx.tokens_of`); :class:`Dictation`
checks that the words are exactly these tokens and locates every token in the raw text, so
character offsets map to tokens exactly (the reference instead rebuilds a string from the
tokens and matches offsets with an inclusive rule).

Sentences. A sentence ends at every token that **is** ``.``: sentence *s* is the tokens
after the (s−1)-th ``.`` token up to and including the s-th; trailing tokens after the last
``.`` (a report without a final period) form a last sentence. Its start ``S`` is the start
time of its first token and its end ``E`` the end time of its last token (the ``.``).

Tokens that contain a period without being ``.`` — decimal numbers: ``"2.5 cm"`` gives the
tokens ``2``, ``.5``, ``cm`` — do **not** end a sentence. Mentions are assigned to sentences
through the token that holds their first character, so the sentence of a mention and the
sentence's times always come from the same segmentation (the reference splits sentences at
``.`` tokens but assigns mentions by every ``.`` character, so a decimal number shifts its
mentions into the wrong sentence; reference-method.md §13 item 6). The labeler's own
``sentence`` column is not used.

Mention times. The time of a mention is the start time of the token that contains its first
character (``window_end: word_start``, the reference). A first character that is whitespace
(the reference-mode labeler writes such mentions for phrases that start at the space before a
word: " mediastinum") belongs to the token before it, as in the reference, whose inclusive
rule gives a space to the word it follows: in "wide mediastinum" the mention " mediastinum"
has the time of "wide". Where the token before is in another sentence, the whitespace goes
to the next token (the reference's labeler never matches there). For ``window_end: word_end``, the
end-type times are the end time of the token that contains the mention's last character
(the paper's "end of the mention"). Per sentence, ``first_mention`` and ``last_mention`` are
taken over its positive and uncertain mentions of categories that map to a model label: the
mention with the smallest and the largest start offset (ties: the longest).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from gazeloc.errors import DataFormatError
from gazeloc.io.reflacx import tokens_of

log = logging.getLogger(__name__)

WINDOW_ENDS = ("word_start", "word_end")
"""``heatmaps.window_end``: mention-based window ends at the start of the word holding the
mention's first character (the reference) or at the end of the word holding its last one."""


@dataclass(frozen=True)
class SentenceTimes:
    """Times of one report sentence, in seconds from the audio start.

    ``start``: start of its first token; ``end``: end of its last token (its ``.``);
    ``first_mention`` / ``last_mention``: start time of the token holding the first character
    (:meth:`Dictation.mention_token`) of its first / last positive-or-uncertain mention
    (``None`` without such a mention);
    ``first_mention_end`` / ``last_mention_end``: end time of the token holding that mention's
    last character (used by ``window_end: word_end``). ``char_start`` / ``char_end`` are the
    sentence's ``[start, end)`` offsets in the report.
    """

    start: float
    end: float
    first_mention: float | None = None
    last_mention: float | None = None
    first_mention_end: float | None = None
    last_mention_end: float | None = None
    char_start: int = 0
    char_end: int = 0

    @property
    def has_mention(self) -> bool:
        return self.first_mention is not None


@dataclass(frozen=True)
class Dictation:
    """A report's tokens located in its text, with times and sentences.

    ``spans[i]`` is token ``i``'s ``[start, end)`` character range in ``text``; ``sentence[i]``
    its sentence index; ``starts`` / ``ends`` its times (seconds).
    """

    text: str
    tokens: tuple[str, ...]
    starts: np.ndarray
    ends: np.ndarray
    spans: np.ndarray
    sentence: np.ndarray

    @classmethod
    def from_words(
        cls,
        text: str,
        words: pl.DataFrame | Sequence[tuple[str, float, float]],
        *,
        source: str | Path = "timestamps_transcription.csv",
    ) -> Dictation:
        """Build from the report text and its word rows.

        Raises :class:`~gazeloc.errors.DataFormatError` (naming ``source``, the line and the
        ``word`` column) when the words are not the REFLACX tokens of ``text``, and when a
        time is missing, a word ends before it starts or times go backwards.
        """
        if isinstance(words, pl.DataFrame):
            tokens = [str(w) for w in words.get_column("word").to_list()]
            starts = words.get_column("timestamp_start_word").cast(pl.Float64).to_numpy()
            ends = words.get_column("timestamp_end_word").cast(pl.Float64).to_numpy()
        else:
            rows = list(words)
            tokens = [str(r[0]) for r in rows]
            starts = np.array([float(r[1]) for r in rows], dtype=np.float64)
            ends = np.array([float(r[2]) for r in rows], dtype=np.float64)
        expected = tokens_of(text)
        for i, (got, want) in enumerate(zip(tokens, expected, strict=False)):
            if got != want:
                raise DataFormatError(
                    source,
                    f"word '{got}' does not match token '{want}' of the report (token {i + 1})",
                    line=i + 2,
                    column="word",
                )
        if len(tokens) != len(expected):
            raise DataFormatError(
                source,
                f"{len(tokens)} words but the report has {len(expected)} tokens",
                line=min(len(tokens), len(expected)) + 2,
                column="word",
            )
        for name, values in (("timestamp_start_word", starts), ("timestamp_end_word", ends)):
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                raise DataFormatError(
                    source, "missing or non-finite time", line=int(bad[0]) + 2, column=name
                )
        bad = np.flatnonzero(ends < starts)
        if bad.size:
            i = int(bad[0])
            raise DataFormatError(
                source,
                f"word ends before it starts ({starts[i]} > {ends[i]})",
                line=i + 2,
                column="timestamp_end_word",
            )
        bad = np.flatnonzero(np.diff(starts) < 0)
        if bad.size:
            i = int(bad[0]) + 1
            raise DataFormatError(
                source,
                f"times go backwards ({starts[i - 1]} then {starts[i]})",
                line=i + 2,
                column="timestamp_start_word",
            )
        spans = _token_spans(text)
        is_period = np.array([t == "." for t in tokens], dtype=bool)
        # sentence index of token i = number of '.' tokens strictly before it
        sentence = np.concatenate([[0], np.cumsum(is_period)[:-1]]).astype(np.int64)
        return cls(text, tuple(tokens), starts, ends, spans, sentence)

    @property
    def n_sentences(self) -> int:
        return int(self.sentence[-1]) + 1 if self.sentence.size else 0

    @property
    def last_word_end(self) -> float:
        """End time of the last token (seconds): the end of the full-report window."""
        return float(self.ends[-1]) if self.ends.size else 0.0

    def token_at(self, char: int) -> int:
        """Index of the token holding character ``char``; whitespace belongs to the next token.

        Raises ``ValueError`` for an offset outside the text or after the last token.
        """
        if not 0 <= char < len(self.text):
            raise ValueError(f"character offset {char} is outside the report (0..{len(self.text)})")
        # first token whose end is beyond char: holds it, or is the next token after a space
        i = int(np.searchsorted(self.spans[:, 1], char, side="right"))
        if i >= len(self.tokens):
            raise ValueError(f"character offset {char} is after the last token")
        return i

    def mention_token(self, char: int) -> int:
        """The token whose start time is the time of a mention beginning at ``char``: the one
        holding it, or, for whitespace, the token before it when that is in the same sentence
        (module doc)."""
        i = self.token_at(char)
        if (
            self.text[char].isspace()
            and i > 0
            and self.spans[i - 1, 1] <= char
            and self.sentence[i - 1] == self.sentence[i]
        ):
            return i - 1
        return i

    def sentence_at(self, char: int) -> int:
        """Sentence index of the token holding character ``char``."""
        return int(self.sentence[self.token_at(char)])

    def sentence_spans(self) -> list[tuple[int, int]]:
        """``[start, end)`` character range of each sentence (first to last token)."""
        out = []
        for s in range(self.n_sentences):
            idx = np.flatnonzero(self.sentence == s)
            out.append((int(self.spans[idx[0], 0]), int(self.spans[idx[-1], 1])))
        return out

    def sentence_times(self, mentions: Iterable[tuple[int, int]] = ()) -> list[SentenceTimes]:
        """:class:`SentenceTimes` of every sentence, with mention times from ``mentions``.

        ``mentions`` are the ``[start, end)`` offsets of the present (positive or uncertain)
        mentions of mapped categories; others must be filtered out by the caller.
        """
        firsts: dict[int, tuple[int, int]] = {}
        lasts: dict[int, tuple[int, int]] = {}
        for start, end in mentions:
            start, end = int(start), int(end)
            if not 0 <= start < end <= len(self.text):
                raise ValueError(
                    f"mention [{start}, {end}) is not a non-empty range of the report "
                    f"(length {len(self.text)})"
                )
            s = self.sentence_at(start)
            best = firsts.get(s)
            if best is None or (start, -end) < (best[0], -best[1]):
                firsts[s] = (start, end)
            best = lasts.get(s)
            if best is None or (start, end) > best:
                lasts[s] = (start, end)
        out = []
        for s, (c0, c1) in enumerate(self.sentence_spans()):
            idx = np.flatnonzero(self.sentence == s)
            times: dict[str, float | None] = {
                "first_mention": None,
                "last_mention": None,
                "first_mention_end": None,
                "last_mention_end": None,
            }
            for kind, chosen in (("first", firsts.get(s)), ("last", lasts.get(s))):
                if chosen is None:
                    continue
                times[f"{kind}_mention"] = float(self.starts[self.mention_token(chosen[0])])
                last = chosen[1] - 1
                while last > chosen[0] and self.text[last].isspace():
                    last -= 1
                times[f"{kind}_mention_end"] = float(self.ends[self.token_at(last)])
            out.append(
                SentenceTimes(
                    start=float(self.starts[idx[0]]),
                    end=float(self.ends[idx[-1]]),
                    char_start=c0,
                    char_end=c1,
                    **times,
                )
            )
        return out


def _token_spans(text: str) -> np.ndarray:
    """``[start, end)`` offsets in ``text`` of the REFLACX tokens of ``text``.

    The tokens are the pieces of ``text.replace(".", " .").replace(",", " ,")`` between
    single spaces; every character of that string except an inserted space comes from one
    character of ``text``, which gives the offsets.
    """
    origin: list[int] = []  # position in text of each character of the spaced string
    spaced: list[str] = []
    for i, ch in enumerate(text):
        if ch in ".,":
            spaced.append(" ")
            origin.append(-1)
        spaced.append(ch)
        origin.append(i)
    spans = []
    pos = 0
    for token in "".join(spaced).split(" "):
        if token:
            spans.append((origin[pos], origin[pos + len(token) - 1] + 1))
        else:  # an empty token (double or leading space): zero width at the next character
            nxt = next((o for o in origin[pos:] if o >= 0), len(text))
            spans.append((nxt, nxt))
        pos += len(token) + 1
    return np.array(spans, dtype=np.int64).reshape(-1, 2)
