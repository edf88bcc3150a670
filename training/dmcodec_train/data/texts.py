"""Sentences for the synthetic corpus, generated from a small grammar rather than taken from a
fixed list, so a seed yields as many distinct, speakable texts as asked for."""

from __future__ import annotations

import random

_WORDS = {
    "name": "Anna Ben Carla David Elena Frank Grace Henry Iris Jonas Kate Leo Maria Nora Oscar Paula "
            "Quinn Rosa Sam Tina Victor Wendy".split(),
    "person": "the teacher|the doctor|my neighbour|a young farmer|the old sailor|our pilot|the baker|"
              "a tired student|the engineer|her brother|the gardener|a quiet child|the captain|"
              "the musician|his aunt|the driver".split("|"),
    "thing": "the red umbrella|a wooden box|the morning paper|an empty bottle|the silver key|"
             "a heavy suitcase|the garden gate|a broken clock|the kitchen table|a small boat|"
             "the blue notebook|a warm coat|the north window|a paper map|the train ticket|"
             "a basket of apples|the radio|an old photograph|the yellow bicycle|a cup of tea".split("|"),
    "place": "by the river|in the village|at the station|behind the library|on the hill|near the harbour|"
             "in the market|under the bridge|at the airport|in the forest|across the square|"
             "at the end of the road|inside the museum|on the second floor".split("|"),
    "time": "this morning|last night|on Sunday|after lunch|before the storm|at seven o'clock|"
            "every winter|in the spring|yesterday afternoon|tomorrow|a week ago|later today".split("|"),
    "verb_past": "found|carried|painted|opened|fixed|sold|borrowed|dropped|cleaned|moved|hid|"
                 "forgot|brought|noticed|bought|lost".split("|"),
    "verb_base": "find|carry|paint|open|fix|sell|borrow|clean|move|hide|bring|check|buy|visit".split("|"),
    "adjective": "quiet|bright|cold|strange|careful|happy|busy|late|gentle|loud|clever|patient|"
                 "nervous|calm".split("|"),
    "adverb": "slowly|quickly|carefully|quietly|suddenly|gladly|nearly|finally|always|rarely".split("|"),
    "number": "two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
              "fifty|a hundred".split("|"),
    "unit": "minutes|hours|days|miles|pages|people|boxes|letters|songs|steps".split("|"),
}

_TEMPLATES = [
    "{person} {verb_past} {thing} {place}.",
    "{name} {adverb} {verb_past} {thing} {time}.",
    "{time}, {name} and {person} walked {number} {unit} {place}.",
    "Did {person} {verb_base} {thing} {time}?",
    "Please {verb_base} {thing} before {name} comes back.",
    "It was a {adjective} day, and {person} stayed {place}.",
    "Why is {person} so {adjective} {time}?",
    "{name} said that {thing} was {place}.",
    "We waited {number} {unit} for {person}, who was {adjective} and {adverb} late.",
    "If you {verb_base} {thing}, {name} will be {adjective}.",
    "There are {number} {unit} left, so {person} has to {verb_base} {thing} {time}.",
    "{person} never {verb_past} anything {place}, not even {thing}.",
    "Where did {name} {verb_base} {thing}?",
    "{name} was {adjective}; {person} {adverb} {verb_past} {thing}.",
]


def _fill(template: str, rng: random.Random) -> str:
    text = template
    while "{" in text:
        start = text.index("{")
        end = text.index("}", start)
        text = text[:start] + rng.choice(_WORDS[text[start + 1:end]]) + text[end + 1:]
    return text[0].upper() + text[1:]


def generate_sentences(n: int, seed: int = 0, max_sentences_per_text: int = 2) -> list[str]:
    """`n` distinct texts of one or two sentences, the same for the same seed."""
    rng = random.Random(seed)
    texts: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(texts) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(f"could not generate {n} distinct texts; ask for fewer")
        parts = [_fill(rng.choice(_TEMPLATES), rng) for _ in range(rng.randint(1, max_sentences_per_text))]
        text = " ".join(parts)
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts
