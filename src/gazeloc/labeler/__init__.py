"""Report labeler: category mentions with character offsets and negation/uncertainty status.

An offline, rule-based re-implementation of the modified CheXpert labeler of the reference
(docs/method.md#report-labeler). Rules are YAML files under ``gazeloc/labeler/rules/`` that a
radiologist can read and edit (``rules/README.md``); the engine is in
:mod:`gazeloc.labeler.engine`.
"""

from gazeloc.labeler.engine import (
    STATUS_VALUE,
    STATUSES,
    Labeler,
    Mention,
    aggregate,
    label_report,
    mentions_by_sentence,
    report_labels,
    sentence_index,
    split_sentences,
)
from gazeloc.labeler.rules_io import CATEGORIES, load_rules

__all__ = [
    "CATEGORIES",
    "STATUSES",
    "STATUS_VALUE",
    "Labeler",
    "Mention",
    "aggregate",
    "label_report",
    "load_rules",
    "mentions_by_sentence",
    "report_labels",
    "sentence_index",
    "split_sentences",
]
