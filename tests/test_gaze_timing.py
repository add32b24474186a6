"""Sentences, mention times and time windows (reference-method.md §3.2–3.4)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gazeloc.errors import DataFormatError
from gazeloc.gaze import DEFAULT_METHOD, Dictation, SentenceTimes, parse_method, window
from gazeloc.gaze.windows import BASE_STARTS, DELAY_STARTS, END_RULES

# data-formats.md D.5 / D.6
TEXT = (
    "endotracheal tube in standard position. small left pleural effusion, with adjacent "
    "atelectasis. cardiomegaly. no pneumothorax."
)
WORDS = [
    ("endotracheal", 1.34, 2.02),
    ("tube", 2.02, 2.31),
    ("in", 2.31, 2.4),
    ("standard", 2.4, 2.87),
    ("position", 2.87, 3.41),
    (".", 3.41, 3.75),
    ("small", 4.62, 4.9),
    ("left", 4.9, 5.13),
    ("pleural", 5.13, 5.5),
    ("effusion", 5.5, 6.04),
    (",", 6.04, 6.3),
    ("with", 6.3, 6.45),
    ("adjacent", 6.45, 6.93),
    ("atelectasis", 6.93, 7.71),
    (".", 7.71, 8.02),
    ("cardiomegaly", 8.9, 9.66),
    (".", 9.66, 9.9),
    ("no", 10.55, 10.7),
    ("pneumothorax", 10.7, 11.42),
    (".", 11.42, 11.42),
]


def span(text: str, phrase: str) -> tuple[int, int]:
    start = text.index(phrase)
    return start, start + len(phrase)


@pytest.fixture
def dictation() -> Dictation:
    return Dictation.from_words(TEXT, WORDS)


@pytest.fixture
def times(dictation: Dictation) -> list[SentenceTimes]:
    mentions = [span(TEXT, "pleural effusion"), span(TEXT, "atelectasis"), span(TEXT, "cardio")]
    return dictation.sentence_times(mentions)


def test_sentences_and_mention_times(dictation, times):
    assert dictation.n_sentences == 4
    assert [(s.start, s.end) for s in times] == [
        (1.34, 3.75),
        (4.62, 8.02),
        (8.9, 9.9),
        (10.55, 11.42),
    ]
    s1 = times[1]
    assert (s1.first_mention, s1.last_mention) == (5.13, 6.93)
    assert (s1.first_mention_end, s1.last_mention_end) == (6.04, 7.71)
    assert times[2].first_mention == times[2].last_mention == 8.9
    assert times[0].first_mention is None and not times[0].has_mention
    assert (
        TEXT[s1.char_start : s1.char_end]
        == "small left pleural effusion, with adjacent atelectasis."
    )
    assert dictation.last_word_end == 11.42


def test_default_window_hand_computed(times):
    # sentence 1: max(4.62 - 1.5, S_0 = 1.34) = 3.12 up to the start of "atelectasis"
    t0, t1 = window(DEFAULT_METHOD, times, 1)
    assert t0 == pytest.approx(3.12) and t1 == 6.93
    # sentence 2: max(8.9 - 1.5, 4.62) = 7.4 up to the start of "cardiomegaly"
    assert window(DEFAULT_METHOD, times, 2) == pytest.approx((7.4, 8.9))
    # word_end switch: the end of the word holding the last mention's last character
    assert window(DEFAULT_METHOD, times, 1, window_end="word_end") == pytest.approx((3.12, 7.71))


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("2.5s_startofsentence_endofsentence", (2.12, 8.02)),
        ("5.0s_startofsentence_startofsentence", (1.34, 4.62)),
        ("5s_startofsentence_startofsentence", (1.34, 4.62)),
        ("5.0s_mention_firstmention", (1.34, 5.13)),
        ("2.5s_mention_lastmention", (2.63, 6.93)),
        ("7.5s_endofsentence_endofsentence", (1.34, 8.02)),
        ("2.5s_endofsentence_lastmention", (5.52, 6.93)),
        ("single_endofsentence", (4.62, 8.02)),
        ("single_lastmention", (4.62, 6.93)),
        ("double_lastmention", (1.34, 6.93)),
        ("double_startofsentence", (1.34, 4.62)),
        ("all_firstmention", (0.0, 5.13)),
        ("allsentences_endofsentence", (1.34, 8.02)),
        ("andpause_endofsentence", (3.75, 8.02)),
        ("andpause_startofsentence", (3.75, 4.62)),
        ("single_startofsentence", None),
        ("1.5s_startofsentence_firstmention", (3.12, 5.13)),
    ],
)
def test_every_rule_hand_computed(times, method, expected):
    got = window(method, times, 1)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_first_sentence_uses_zero_as_previous(times, dictation):
    first = dictation.sentence_times([span(TEXT, "tube")])
    assert window("1.5s_startofsentence_lastmention", first, 0) == (0.0, 2.02)
    assert window("double_endofsentence", first, 0) == (0.0, 3.75)
    assert window("andpause_endofsentence", first, 0) == (0.0, 3.75)
    assert window("allsentences_endofsentence", first, 0) == (1.34, 3.75)


def test_method_parsing():
    assert parse_method("5s_startofsentence_lastmention") == parse_method(
        "5.0s_startofsentence_lastmention"
    )
    assert parse_method("5s_startofsentence_lastmention").name == (
        "5.0s_startofsentence_lastmention"
    )
    assert parse_method("0.75s_mention_endofsentence").delay == 0.75
    assert parse_method(".5s_mention_endofsentence").delay == 0.5
    assert parse_method("andpause_endofsentence").delay is None
    for bad in (
        "1.5s_single_lastmention",
        "1.5_startofsentence_lastmention",
        "s_startofsentence_lastmention",
        "double_middle",
        "1.5s_startofsentence_lastmention_x",
        "",
    ):
        with pytest.raises(ValueError):
            parse_method(bad)


def test_window_errors(times):
    with pytest.raises(ValueError, match="no positive or uncertain mention"):
        window("single_lastmention", times, 0)
    with pytest.raises(ValueError, match="out of range"):
        window(DEFAULT_METHOD, times, 4)
    with pytest.raises(ValueError, match="window_end"):
        window(DEFAULT_METHOD, times, 1, window_end="middle")


def test_decimal_number_does_not_split_a_sentence():
    text = "a 2.5 cm nodule is seen. no effusion."
    words = [
        (t, 0.5 * i, 0.5 * i + 0.4)
        for i, t in enumerate("a 2 .5 cm nodule is seen . no effusion .".split())
    ]
    d = Dictation.from_words(text, words)
    assert d.n_sentences == 2
    # the reference would put "nodule" (after the decimal point's '.') in sentence 1
    assert d.sentence_at(text.index("nodule")) == 0
    assert d.sentence_at(text.index("effusion")) == 1
    s = d.sentence_times([span(text, "nodule")])
    assert s[0].first_mention == 2.0  # "nodule" is token 4
    assert (s[0].start, s[0].end) == (0.0, 3.9)


def test_whitespace_start_goes_to_the_word_before_and_no_final_period():
    text = "left pleural effusion. small nodule"
    words = [
        (t, float(i), i + 0.5) for i, t in enumerate("left pleural effusion . small nodule".split())
    ]
    d = Dictation.from_words(text, words)
    assert d.n_sentences == 2
    # the reference's inclusive rule: a phrase that starts at the space before "nodule" has
    # the time of "small" (token 4), the word the space follows
    start = text.index(" nodule")
    s = d.sentence_times([(start, start + 7)])
    assert s[1].first_mention == 4.0 and s[1].end == 5.5
    assert d.sentence_at(start) == 1
    # ... but never the word of another sentence: after a period it goes to the next word
    start = text.index(" small")
    s = d.sentence_times([(start, start + 6)])
    assert s[1].first_mention == 4.0 and s[0].first_mention is None
    # a trailing space in a mention does not move its end to the next word
    s = d.sentence_times([(text.index("left"), text.index("left") + 5)])
    assert s[0].first_mention_end == 0.5


def test_transcript_that_disagrees_is_an_error():
    wrong = list(WORDS)
    wrong[3] = ("standards", 2.4, 2.87)
    with pytest.raises(DataFormatError, match=r"line 5, column 'word'.*standards"):
        Dictation.from_words(TEXT, wrong)
    with pytest.raises(DataFormatError, match="19 words but the report has 20 tokens"):
        Dictation.from_words(TEXT, WORDS[:-1])
    backwards = list(WORDS)
    backwards[7] = ("left", 4.0, 5.13)
    with pytest.raises(DataFormatError, match="backwards"):
        Dictation.from_words(TEXT, backwards)
    inverted = list(WORDS)
    inverted[7] = ("left", 4.9, 4.8)
    with pytest.raises(DataFormatError, match="ends before it starts"):
        Dictation.from_words(TEXT, inverted)


def test_mention_outside_the_report_is_an_error(dictation):
    with pytest.raises(ValueError, match="not a non-empty range"):
        dictation.sentence_times([(len(TEXT) - 2, len(TEXT) + 5)])
    with pytest.raises(ValueError):
        dictation.sentence_times([(5, 5)])


# --- properties ----------------------------------------------------------------------------

METHODS = [f"{d}s_{s}_{e}" for d in (0.5, 1.5, 5) for s in DELAY_STARTS for e in END_RULES] + [
    f"{b}_{e}" for b in BASE_STARTS for e in END_RULES
]


@st.composite
def sentence_lists(draw):
    n = draw(st.integers(1, 6))
    t = draw(st.floats(0, 5))
    out = []
    for _ in range(n):
        t += draw(st.floats(0, 3))
        start = t
        t += draw(st.floats(0.01, 6))
        end = t
        a = draw(st.floats(start, end))
        b = draw(st.floats(a, end))
        out.append(SentenceTimes(start, end, a, b, b, end))
    return out


def expected_window(method, sentences, i):
    """An independent transcription of reference-method.md §3.4's table."""
    m = parse_method(method)
    s = sentences[i]
    prev = sentences[i - 1] if i else SentenceTimes(0.0, 0.0)
    t1 = {
        "startofsentence": s.start,
        "endofsentence": s.end,
        "firstmention": s.first_mention,
        "lastmention": s.last_mention,
    }[m.end]
    if m.delay is not None:
        anchor = {"startofsentence": s.start, "endofsentence": s.end, "mention": s.first_mention}
        t0 = max(anchor[m.start] - m.delay, prev.start)
    else:
        t0 = {
            "single": s.start,
            "double": prev.start,
            "all": 0.0,
            "allsentences": sentences[0].start,
            "andpause": prev.end,
        }[m.start]
    return (t0, t1) if t0 < t1 else None


@settings(max_examples=300, deadline=None)
@given(sentence_lists(), st.sampled_from(METHODS), st.data())
def test_window_properties(sentences, method, data):
    i = data.draw(st.integers(0, len(sentences) - 1))
    m = parse_method(method)
    got = window(method, sentences, i)
    assert got == expected_window(method, sentences, i)
    if got is None:
        return
    t0, t1 = got
    prev_start = sentences[i - 1].start if i else 0.0
    assert 0 <= t0 < t1 <= sentences[i].end
    if m.delay is not None:
        assert t0 >= prev_start  # never before the previous sentence's start
    assert math.isfinite(t0)
