"""Evaluation metrics; this package imports nothing from the rest of mpdrec."""
