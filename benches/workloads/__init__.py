"""Measurement code that runs in a fresh process per measurement (see ../worker.py)."""
