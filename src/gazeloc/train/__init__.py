"""Training: a run's data, augmentation and the resumable training loop.

Experiment settings live in :mod:`gazeloc.experiments`, the device and precision in
:mod:`gazeloc.devices` and the readers of the inputs in the data layer (:mod:`gazeloc.datasets`),
so that evaluation, the report and prediction share them without importing this package.
"""
