"""Recommendation lists, shared by the models and the rank stage and below both: what every model
reads (`inputs`), how sources' lists become a playlist's one list (`assemble`), and how a list is
scored against a held-out challenge (`scoring`)."""
