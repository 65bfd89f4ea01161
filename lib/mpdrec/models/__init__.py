"""Recommendation models; each answers "top-N tracks for these query playlists"."""
