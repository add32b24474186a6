"""The data layer: readers of the training and evaluation inputs.

Training, evaluation, the report and prediction read the stages' outputs through these modules
(none of them imports another stage's package for its data):

* :mod:`gazeloc.datasets.shards` — :class:`~gazeloc.datasets.shards.ShardDataset`, a PyTorch
  dataset of the framed images in the HDF5 shards;
* :mod:`gazeloc.datasets.index` — the image index (labels, splits) and which images the shards
  hold;
* :mod:`gazeloc.datasets.annotations` — the REFLACX annotation stores (eye-tracking heatmaps,
  ellipses) and what each experiment supervises with them;
* :mod:`gazeloc.datasets.sets` — labelled image sets and the batch collation.

This package imports nothing itself (torch is imported by the submodules that need it).
"""
