"""Country x song streams (the Spotify Charts study): the matrices, IMF, the five networks, EPR and country arithmetic."""
