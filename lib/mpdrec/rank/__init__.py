"""Ranking: candidates, blending and the challenge submission."""
