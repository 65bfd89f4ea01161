"""Realistic MPD-format generator: slices and a challenge set, at any scale up to the full MPD."""
