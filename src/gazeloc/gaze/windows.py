"""Time windows of a sentence for every method string of docs/method.md#time-windows.

A method is ``<delay>s_<start>_<end>`` (``<start>`` ∈ ``startofsentence``,
``endofsentence``, ``mention``; ``<delay>`` in seconds, with or without a decimal point:
``1.5s``, ``5s`` and ``5.0s`` all parse — the reference misparses ``5s``) or
``<base>_<end>`` (``<base>`` ∈ ``single``, ``double``, ``all``, ``allsentences``,
``andpause``); ``<end>`` ∈ ``startofsentence``, ``endofsentence``, ``firstmention``,
``lastmention``.

For sentence *s* with times ``S_s``, ``E_s``, first/last mention ``F_s``/``T_s``
(:class:`~gazeloc.gaze.timing.SentenceTimes`) and ``S_{−1} = E_{−1} = 0``:

==============================  ========================================
start rule                      ``t0``
==============================  ========================================
``<d>s_startofsentence``        ``max(S_s − d, S_{s−1})``
``<d>s_endofsentence``          ``max(E_s − d, S_{s−1})``
``<d>s_mention``                ``max(F_s − d, S_{s−1})``
``single``                      ``S_s``
``double``                      ``S_{s−1}``
``all``                         ``0`` (start of the recording)
``allsentences``                ``S_0``
``andpause``                    ``E_{s−1}``
==============================  ========================================

End ``t1``: ``startofsentence`` → ``S_s``; ``endofsentence`` → ``E_s``; ``firstmention`` →
``F_s``; ``lastmention`` → ``T_s``. With ``window_end="word_end"`` the two mention ends use
the end time of the word holding the mention's last character instead (``heatmaps.window_end``;
the start rule ``mention`` always uses the start of the first mention's word).

The default method is ``1.5s_startofsentence_lastmention``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from gazeloc.gaze.timing import WINDOW_ENDS, SentenceTimes

log = logging.getLogger(__name__)

DEFAULT_METHOD = "1.5s_startofsentence_lastmention"
DELAY_STARTS = ("startofsentence", "endofsentence", "mention")
BASE_STARTS = ("single", "double", "all", "allsentences", "andpause")
END_RULES = ("startofsentence", "endofsentence", "firstmention", "lastmention")

_DELAY = re.compile(
    r"^(?P<delay>\d+(?:\.\d*)?|\.\d+)s_(?P<start>" + "|".join(DELAY_STARTS) + r")_(?P<end>\w+)$"
)
_BASE = re.compile(r"^(?P<start>" + "|".join(BASE_STARTS) + r")_(?P<end>\w+)$")


@dataclass(frozen=True)
class Method:
    """A parsed window method: ``delay`` in seconds (``None`` for base methods)."""

    start: str
    end: str
    delay: float | None = None

    @property
    def name(self) -> str:
        """Canonical spelling (delays with a decimal point: ``5.0s``, ``1.5s``)."""
        if self.delay is None:
            return f"{self.start}_{self.end}"
        return f"{self.delay!r}s_{self.start}_{self.end}"


def parse_method(method: str) -> Method:
    """Parse a method string (module docstring); ``ValueError`` if it is not one."""
    text = method.strip()
    match = _DELAY.match(text)
    if match:
        parsed = Method(match["start"], match["end"], float(match["delay"]))
    else:
        match = _BASE.match(text)
        if not match:
            raise ValueError(
                f"unknown window method {method!r}: expected <delay>s_<start>_<end> with "
                f"<start> in {', '.join(DELAY_STARTS)}, or <base>_<end> with <base> in "
                f"{', '.join(BASE_STARTS)}"
            )
        parsed = Method(match["start"], match["end"])
    if parsed.end not in END_RULES:
        raise ValueError(
            f"unknown window end {parsed.end!r} in {method!r} (one of {', '.join(END_RULES)})"
        )
    return parsed


def _mention(value: float | None, what: str, index: int) -> float:
    if value is None:
        raise ValueError(f"sentence {index} has no positive or uncertain mention ({what})")
    return value


def window(
    method: str | Method,
    sentences: Sequence[SentenceTimes],
    index: int,
    *,
    window_end: str = "word_start",
) -> tuple[float, float] | None:
    """The time window ``(t0, t1)`` (seconds, ``t0 < t1``) of sentence ``index``.

    Returns ``None`` for an empty window (``t0 ≥ t1``): no heatmap for that sentence (logged
    at debug level; callers count and report them). Raises ``ValueError`` for an unknown
    method, an index out of range, or a mention-based rule on a sentence without mentions.
    """
    m = method if isinstance(method, Method) else parse_method(method)
    if window_end not in WINDOW_ENDS:
        raise ValueError(f"window_end must be one of {', '.join(WINDOW_ENDS)}, not {window_end!r}")
    if not 0 <= index < len(sentences):
        raise ValueError(f"sentence index {index} out of range (0..{len(sentences) - 1})")
    s = sentences[index]
    prev_start = sentences[index - 1].start if index > 0 else 0.0
    prev_end = sentences[index - 1].end if index > 0 else 0.0
    word_end = window_end == "word_end"
    if m.end == "startofsentence":
        t1 = s.start
    elif m.end == "endofsentence":
        t1 = s.end
    elif m.end == "firstmention":
        t1 = _mention(s.first_mention_end if word_end else s.first_mention, m.end, index)
    else:
        t1 = _mention(s.last_mention_end if word_end else s.last_mention, m.end, index)
    if m.delay is not None:
        if m.start == "startofsentence":
            anchor = s.start
        elif m.start == "endofsentence":
            anchor = s.end
        else:
            anchor = _mention(s.first_mention, "mention start", index)
        t0 = max(anchor - m.delay, prev_start)
    elif m.start == "single":
        t0 = s.start
    elif m.start == "double":
        t0 = prev_start
    elif m.start == "all":
        t0 = 0.0
    elif m.start == "allsentences":
        t0 = sentences[0].start
    else:  # andpause
        t0 = prev_end
    if t0 < t1:
        return (float(t0), float(t1))
    log.debug("method %s, sentence %d: empty window [%s, %s]", m.name, index, t0, t1)
    return None
