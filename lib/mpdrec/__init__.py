"""mpdrec: batch recommender for the Spotify Million Playlist Dataset."""

__version__ = "0.1.0"
