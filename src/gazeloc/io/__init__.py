"""Readers of the real dataset formats (REFLACX 1.0.0, MIMIC-CXR-JPG 2.0.0)."""

from gazeloc.errors import DataFormatError

__all__ = ["DataFormatError"]
