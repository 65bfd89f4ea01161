"""MPD studies beside playlist continuation: the Dice playlist-neighbour baseline and the followers regression."""
