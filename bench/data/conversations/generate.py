"""Compose the recall development set from the hand-written storylines in ``storylines.py``.

    python bench/data/conversations/generate.py            # rewrites conv_*.json beside this file
    python bench/data/conversations/generate.py --out DIR  # writes them to DIR instead

Deterministic (one seed per conversation): the committed files are what this script writes. Each
conversation is two speakers chatting over 12-16 dated sessions; each speaker owns several storylines
whose beats fall in different sessions, surrounded by small talk and distractor turns. See README.md.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from storylines import ANSWERS, BACKCHANNEL, CLOSERS, FOLLOW_UPS, OPENERS, SMALL_TALK, STORYLINES  # noqa: E402

HERE = Path(__file__).resolve().parent
CONVERSATIONS = 8
STORYLINES_PER_SPEAKER = 7
NAMES = [("Priya", "Marco"), ("Hannes", "Yewande"), ("Sofia", "Tomasz"), ("Aiko", "Daniel"),
         ("Rhys", "Leila"), ("Camille", "Osei"), ("Nadia", "Finn"), ("Ines", "Gabriel")]
STOP = set("""a an the and or but of in on at to for with from by about as is are was were be been being do does
did done have has had having i me my we our you your he she it its they them their this that these those what
which who whom whose when where why how did not no yes so than then there here up down out over into after
before during while just only also very can could will would should may might must get got go going went
s t ll re ve d m o all any some one two each every other another new now own same""".split())


def stem(word: str) -> str:
    """A crude stem, only to check that paraphrased questions share no content word with their evidence."""
    word = word.lower().strip("'")
    for suffix in ("ing", "ed", "es", "s", "'s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str, names: set[str]) -> set[str]:
    return {stem(w) for w in re.findall(r"[A-Za-z']+", text)
            if w.lower().strip("'") not in STOP and w not in names and len(w) > 2}


def shared_words(question: set[str], evidence: set[str]) -> set[str]:
    """Stems in both, counting one that starts the other ("chat", "chatt") as shared."""
    return {q for q in question for e in evidence
            if q == e or (min(len(q), len(e)) >= 4 and (q.startswith(e) or e.startswith(q)))}


def month_year(iso: str) -> str:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%B %Y")


def day_month_year(iso: str) -> str:
    d = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return f"{d.day} {d.strftime('%B %Y')}"


def session_dates(rng: random.Random, n: int) -> list[str]:
    day = datetime(2022, 1, 10) + timedelta(days=rng.randrange(0, 900))
    dates = []
    for _ in range(n):
        at = day.replace(hour=rng.randrange(8, 23), minute=rng.randrange(0, 60))
        dates.append(at.strftime("%Y-%m-%dT%H:%M:00Z"))
        day += timedelta(days=rng.randrange(4, 26))
    return dates


def place_beats(rng: random.Random, n_beats: int, n_sessions: int, load: list[int]) -> list[int]:
    """Sessions for a storyline's beats: increasing, at least two sessions apart, at most 3 beats a session."""
    for _ in range(1000):
        first = rng.randrange(0, n_sessions - 2 * (n_beats - 1))
        sessions = [first]
        for _ in range(n_beats - 1):
            sessions.append(min(n_sessions - 1, sessions[-1] + rng.randrange(2, 8)))
        if len(set(sessions)) == n_beats and all(load[s] < 3 for s in sessions):
            for s in sessions:
                load[s] += 1
            return sessions
    raise RuntimeError("could not place beats")


def exchange(rng: random.Random, speakers: list[str], text: str) -> list[tuple[str, str, Any]]:
    """A remark by one speaker and a short reply by the other."""
    said, replies = rng.sample(speakers, 2)
    return [(said, text, None), (replies, rng.choice(BACKCHANNEL), None)]


def build_conversation(index: int) -> dict[str, Any]:
    rng = random.Random(1000 + index)
    speakers = list(NAMES[index])
    n_sessions = rng.randrange(12, 17)
    dates = session_dates(rng, n_sessions)
    chosen = rng.sample(STORYLINES, 2 * STORYLINES_PER_SPEAKER)
    load = [0] * n_sessions
    # per session: segments (lists of (speaker, text, evidence key or None)) to shuffle in
    segments: list[list[list[tuple[str, str, Any]]]] = [[] for _ in range(n_sessions)]
    instances = []
    for pos, story in enumerate(chosen):
        me, you = speakers[pos % 2], speakers[1 - pos % 2]
        values = {slot: rng.choice(options) for slot, options in story["slots"].items()}
        values |= {"me": me, "you": you}
        sessions = place_beats(rng, len(story["beats"]), n_sessions, load)
        for b, (phrasings, s) in enumerate(zip(story["beats"], sessions, strict=True)):
            segment = [(me, rng.choice(phrasings).format(**values), (pos, b)),
                       (you, rng.choice(story["reactions"]).format(**values), None)]
            if rng.random() < 0.4:
                segment.append((me, rng.choice(FOLLOW_UPS), None))
            segments[s].append(segment)
        free = [s for s in range(n_sessions) if s not in sessions]
        later = [s for s in free if s > sessions[0]] or free
        for ask, tell in rng.sample(story["chatter"], 2):  # the topic again, no answer, later sessions
            segments[rng.choice(later)].append([(you, ask.format(**values), None),
                                                (me, tell.format(**values), None)])
        for text in rng.sample(story["distractors"], 2):  # the topic's words, no answer, other sessions
            segments[rng.choice(free)].append(exchange(rng, speakers, text))
        instances.append((story, values, sessions, me))
    sessions_out = []
    evidence_ids: dict[tuple[int, int], str] = {}
    for s in range(n_sessions):
        a, b = rng.sample(speakers, 2)
        turns_raw: list[tuple[str, str, Any]] = [(a, rng.choice(OPENERS).format(you=b), None),
                                                 (b, rng.choice(ANSWERS), None)]
        body = segments[s] + [exchange(rng, speakers, t) for t in rng.sample(SMALL_TALK, rng.randrange(1, 4))]
        rng.shuffle(body)
        for segment in body:
            turns_raw.extend(segment)
        turns_raw.append((rng.choice(speakers), rng.choice(CLOSERS), None))
        session_id = f"s{s + 1:02d}"
        turns = []
        for t, (speaker, text, key) in enumerate(turns_raw):
            turn_id = f"conv{index + 1:02d}-{session_id}-t{t + 1:03d}"
            turns.append({"id": turn_id, "speaker": speaker, "text": text})
            if key is not None:
                evidence_ids[key] = turn_id
        sessions_out.append({"session_id": session_id, "date": dates[s], "turns": turns})
    turn_text = {t["id"]: t["text"] for session in sessions_out for t in session["turns"]}
    questions, problems = [], []
    for pos, (story, values, sessions, _me) in enumerate(instances):
        dated = values | {f"date{b}": day_month_year(dates[s]) for b, s in enumerate(sessions)}
        for category, beats, phrasings, answer in story["questions"]:
            evidence = [evidence_ids[(pos, b)] for b in beats]
            text = rng.choice(phrasings).format(**dated, when=month_year(dates[sessions[beats[0]]]))
            if category == "paraphrased":
                shared = shared_words(content_words(text, set(speakers)), set().union(
                    *(content_words(turn_text[e], set(speakers)) for e in evidence)))
                if shared:
                    problems.append(f"paraphrased question shares {sorted(shared)} with its evidence: {text!r}")
            questions.append({"id": f"conv{index + 1:02d}-q{len(questions) + 1:03d}", "question": text,
                              "category": category, "evidence": evidence, "answer": answer.format(**dated),
                              "storyline": story["key"]})
    if problems:
        raise ValueError("\n".join(problems))
    return {"conversation_id": f"conv{index + 1:02d}", "speakers": speakers, "sessions": sessions_out,
            "questions": questions}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="write the recall development set")
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write conv_*.json to (default: here)")
    out = parser.parse_args(argv).out
    for index in range(CONVERSATIONS):
        conversation = build_conversation(index)
        path = out / f"conv_{index + 1:02d}.json"
        path.write_text(json.dumps(conversation, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        turns = sum(len(s["turns"]) for s in conversation["sessions"])
        print(f"{path.name}: {len(conversation['sessions'])} sessions, {turns} turns, "
              f"{len(conversation['questions'])} questions")


if __name__ == "__main__":
    main()
