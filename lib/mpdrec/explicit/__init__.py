"""Explicit ratings (the Book-Crossing study): targets, split, the Jaccard baseline, ALS and the networks."""
