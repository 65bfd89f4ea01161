"""Word lists behind the synthetic MPD: themes with the playlist titles people give them, and the
words that names of tracks, albums and artists are built from.

Titles matter: in the MPD many playlists share short titles ("country", "chill", "workout") in
varied spellings, and the title is the only signal for title-only challenge playlists, so each
theme carries a handful of spellings (case, emoji, suffixes) that normalise to few keys.
"""
from __future__ import annotations

# theme name -> playlist titles used for that theme (first is the most common spelling)
THEMES: dict[str, tuple[str, ...]] = {
    "country": ("country", "Country", "COUNTRY", "country 🤠", "Country Music", "country!!"),
    "chill": ("chill", "Chill", "chill vibes", "Chill Vibes ✌️", "chillin", "CHILL"),
    "workout": ("workout", "Workout", "gym", "Gym 💪", "WORKOUT", "work out"),
    "rap": ("rap", "Rap", "RAP", "hip hop", "Hip Hop", "rap 🔥"),
    "party": ("party", "Party", "PARTY", "party 🎉", "Party Playlist", "pregame"),
    "throwbacks": ("throwbacks", "Throwbacks", "throwback", "THROWBACKS", "Throwback Jams"),
    "rock": ("rock", "Rock", "Classic Rock", "classic rock", "ROCK", "rock n roll"),
    "sleep": ("sleep", "Sleep", "sleepy", "Sleep 😴", "bedtime", "sleep music"),
    "edm": ("edm", "EDM", "Edm", "electronic", "EDM 🎧", "house"),
    "oldies": ("oldies", "Oldies", "OLDIES", "golden oldies", "oldies but goodies"),
    "worship": ("worship", "Worship", "christian", "Christian", "praise", "WORSHIP"),
    "study": ("study", "Study", "studying", "Study Music", "focus", "homework"),
    "summer": ("summer", "Summer", "SUMMER", "summer 2017", "Summer ☀️", "summertime"),
    "roadtrip": ("road trip", "Road Trip", "roadtrip", "Roadtrip 🚗", "ROAD TRIP", "drive"),
    "love": ("love", "Love", "love songs", "Love Songs ❤️", "romance", "LOVE"),
    "sad": ("sad", "Sad", "sad songs", "sad 😢", "feels", "SAD"),
    "indie": ("indie", "Indie", "indie rock", "Indie Folk", "INDIE", "alternative"),
    "pop": ("pop", "Pop", "POP", "pop hits", "Top Hits", "pop!"),
    "jazz": ("jazz", "Jazz", "smooth jazz", "Jazz 🎷", "JAZZ", "jazzy"),
    "latin": ("latin", "Latin", "reggaeton", "Reggaeton 💃", "spanish", "LATIN"),
    "christmas": ("christmas", "Christmas", "CHRISTMAS", "christmas 🎄", "xmas", "Holiday"),
    "disney": ("disney", "Disney", "DISNEY", "disney ✨", "Disney Songs", "musicals"),
    "metal": ("metal", "Metal", "METAL", "heavy metal", "Metal 🤘", "metalcore"),
    "country_pop": ("new country", "New Country", "country pop", "Country Hits", "kountry"),
    "rnb": ("r&b", "R&B", "rnb", "RnB", "slow jams", "R&B 💜"),
    "emo": ("emo", "Emo", "EMO", "pop punk", "Pop Punk", "emo forever"),
    "classical": ("classical", "Classical", "piano", "Piano 🎹", "CLASSICAL", "orchestra"),
    "running": ("running", "Running", "run", "Run 🏃", "RUNNING", "cardio"),
    "beach": ("beach", "Beach", "BEACH", "beach vibes 🌊", "island", "tropical"),
    "90s": ("90s", "90's", "90s music", "90s 📼", "nineties", "90S"),
    "80s": ("80s", "80's", "80s music", "80s hits", "eighties", "80S"),
    "folk": ("folk", "Folk", "acoustic", "Acoustic 🎸", "FOLK", "coffeehouse"),
    "trap": ("trap", "Trap", "TRAP", "trap 💯", "lit", "Lit 🔥"),
    "reggae": ("reggae", "Reggae", "REGGAE", "reggae 🌴", "roots", "dub"),
    "soul": ("soul", "Soul", "motown", "Motown", "SOUL", "funk"),
    "blues": ("blues", "Blues", "BLUES", "delta blues", "blues 🎺"),
    "kpop": ("kpop", "KPOP", "K-Pop", "kpop 💕", "korean", "bts"),
    "gaming": ("gaming", "Gaming", "game music", "Gaming 🎮", "GAMING", "video games"),
    "morning": ("morning", "Morning", "wake up", "Good Morning ☕", "MORNING", "coffee"),
    "dance": ("dance", "Dance", "DANCE", "dance 💃", "dance party", "club"),
}

# titles that say nothing of the taste; they mix themes
GENERIC_TITLES: tuple[str, ...] = (
    "my playlist", "music", "Music", "favorites", "Favorites", "songs", "jams", "vibes",
    "new", "2017", "mix", "good stuff", "random", "stuff", "playlist", "⭐️", "🔥🔥🔥",
    "car", "shower songs", "everything", "faves", "january", "july", "fall", "spring",
)

ADJECTIVES: tuple[str, ...] = (
    "Golden", "Broken", "Electric", "Silent", "Wild", "Lonely", "Crimson", "Blue", "Velvet",
    "Neon", "Midnight", "Burning", "Hollow", "Sweet", "Endless", "Little", "Savage", "Paper",
    "Sunny", "Frozen", "Lost", "Dancing", "Secret", "Young", "Holy", "Cosmic", "Bitter",
    "Gentle", "Restless", "Shining", "Dirty", "Crystal", "Faded", "Heavy", "Lucky", "Quiet",
    "Purple", "Reckless", "Silver", "Tender",
)
NOUNS: tuple[str, ...] = (
    "Heart", "River", "Night", "Fire", "Dream", "Road", "Sky", "City", "Rain", "Summer",
    "Love", "Ghost", "Wolf", "Ocean", "Star", "Highway", "Garden", "Mirror", "Thunder",
    "Window", "Island", "Echo", "Shadow", "Diamond", "Kingdom", "Horizon", "Storm", "Angel",
    "Machine", "Memory", "Paradise", "Moon", "Season", "Signal", "Stranger", "Tide", "Wave",
    "Youth", "Canyon", "Letter",
)
FIRST_NAMES: tuple[str, ...] = (
    "Jake", "Ava", "Marcus", "Lena", "Dylan", "Sofia", "Tyler", "Maya", "Cole", "Nina", "Luke",
    "Zoe", "Miles", "Ella", "Jordan", "Isla", "Drew", "Chloe", "Kane", "Ruby", "José", "Björk",
    "Noah", "Lily", "Owen", "Jade", "Kai", "Aria", "Reid", "Nora",
)
LAST_NAMES: tuple[str, ...] = (
    "Carter", "Hayes", "Brooks", "Rivera", "Walsh", "Stone", "Monroe", "Price", "Knox", "Bennett",
    "Hale", "Quinn", "Reyes", "Shaw", "Vega", "Fox", "Lane", "Park", "Cruz", "Wilde", "Núñez",
    "Grant", "Mercer", "Blake", "Frost", "Young", "Cash", "Rhodes", "Santos", "Lowe",
)
TRACK_SUFFIXES: tuple[str, ...] = (
    "", "", "", "", "", "", " - Remastered", " (feat. {feat})", " - Radio Edit", " (Acoustic)",
    " - Live", " (Remix)",
)
DESCRIPTIONS: tuple[str, ...] = (
    "songs i like", "for the car", "my favorite songs right now", "good vibes only",
    "what i listen to at work", "for late nights", "all the feels", "turn it up",
)
