"""Gaze to label-specific heatmaps (paper §2.1.2–2.1.3).

The method: docs/method.md, from "Sentences and mention times" to "Ellipse masks".

* :mod:`gazeloc.gaze.timing` — :class:`SentenceTimes` and :class:`Dictation`: sentences and
  mention times from ``timestamps_transcription.csv`` and the labeler's character offsets;
* :mod:`gazeloc.gaze.windows` — :func:`window`: every start/end rule of docs/method.md#time-windows;
* :mod:`gazeloc.gaze.render` — :func:`heatmap` and :class:`FrameRenderer`: Gaussian fixation
  heatmaps rendered directly in the padded square frame;
* :mod:`gazeloc.gaze.ellipses` — ellipse masks per label in the same frame;
* :mod:`gazeloc.gaze.stage` — the ``gazeloc heatmaps`` / ``gazeloc ellipses`` HDF5 files;
* :mod:`gazeloc.gaze.location` — the location-extraction validation (paper §2.8, §3.2);
* :mod:`gazeloc.gaze.figure` — Figure 1 of the paper;
* :mod:`gazeloc.gaze.oracle` — direct full-resolution implementations (tests, benchmarks).

Not to be confused with :mod:`gazeloc.synthetic.gaze`, the synthetic data's gaze simulator.
"""

from __future__ import annotations

from gazeloc.gaze.render import FrameRenderer, heatmap
from gazeloc.gaze.timing import Dictation, SentenceTimes
from gazeloc.gaze.windows import DEFAULT_METHOD, parse_method, window

__all__ = [
    "DEFAULT_METHOD",
    "Dictation",
    "FrameRenderer",
    "SentenceTimes",
    "heatmap",
    "parse_method",
    "window",
]
