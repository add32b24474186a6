"""Synthetic REFLACX 1.0.0 + MIMIC-CXR-JPG 2.0.0 generator (no real patient data involved)."""
