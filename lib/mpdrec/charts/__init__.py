"""Country x song streams (the Spotify Charts study): matrices, IMF, the five networks, EPR, country arithmetic."""
