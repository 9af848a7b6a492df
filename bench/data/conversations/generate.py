"""Compose the recall development set from the hand-written storylines in ``storylines.py``.

    python bench/data/conversations/generate.py            # rewrites conv_*.json beside this file
    python bench/data/conversations/generate.py --out DIR  # writes them to DIR instead

Deterministic (one seed per conversation): the committed files are what this script writes. Each
conversation is two speakers chatting over 12-30 dated sessions, in one of two styles (README.md):
"storylines" (conv_01-08: each speaker owns several storylines whose beats fall in different sessions,
surrounded by small talk and distractor turns) and "recurring" (conv_09-14: each speaker comes back to a
few topics three times over, each time with other names, places and numbers).
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
from recurring import TOPICS  # noqa: E402
from storylines import ANSWERS, BACKCHANNEL, CLOSERS, FOLLOW_UPS, OPENERS, SMALL_TALK, STORYLINES  # noqa: E402

HERE = Path(__file__).resolve().parent
CONVERSATIONS = 8
STORYLINES_PER_SPEAKER = 7
NAMES = [("Priya", "Marco"), ("Hannes", "Yewande"), ("Sofia", "Tomasz"), ("Aiko", "Daniel"),
         ("Rhys", "Leila"), ("Camille", "Osei"), ("Nadia", "Finn"), ("Ines", "Gabriel")]
RECURRING_NAMES = [("Maya", "Joel"), ("Bruno", "Harriet"), ("Zainab", "Luca"), ("Elena", "Kwame"),
                   ("Freya", "Arjun"), ("Noor", "Callum")]
TOPICS_PER_SPEAKER = 4
INSTANCES = 5  # how many times a recurring topic comes back, each time with other specifics
QUESTIONS_PER_INSTANCE = 2
ASIDES = (0, 1, 1, 2, 2)  # how many other things a recurring-style turn that names something also says


def with_aside(rng: random.Random, text: str, asides: list[str]) -> str:
    """``text`` among 0-2 unrelated sentences (one turn, several things, as people write)."""
    said = rng.sample(asides, rng.choice(ASIDES))
    said.insert(rng.randrange(len(said) + 1), text)
    return " ".join(said)
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


def place_beats(rng: random.Random, n_beats: int, n_sessions: int, load: list[int], most: int = 3) -> list[int]:
    """Sessions for a storyline's beats: increasing, at least two sessions apart, at most ``most`` beats a session."""
    for _ in range(1000):
        first = rng.randrange(0, n_sessions - 2 * (n_beats - 1))
        sessions = [first]
        for _ in range(n_beats - 1):
            sessions.append(min(n_sessions - 1, sessions[-1] + rng.randrange(2, 8)))
        if len(set(sessions)) == n_beats and all(load[s] < most for s in sessions):
            for s in sessions:
                load[s] += 1
            return sessions
    raise RuntimeError("could not place beats")


def exchange(rng: random.Random, speakers: list[str], text: str) -> list[tuple[str, str, Any]]:
    """A remark by one speaker and a short reply by the other."""
    said, replies = rng.sample(speakers, 2)
    return [(said, text, None), (replies, rng.choice(BACKCHANNEL), None)]


def compose_sessions(rng: random.Random, index: int, speakers: list[str], dates: list[str],
                     segments: list[list[list[tuple[str, str, Any]]]]) -> tuple[list[dict[str, Any]], dict[Any, str]]:
    """Each session's segments shuffled among small talk, between a greeting and a goodbye; the sessions,
    and the turn id given to each evidence key."""
    sessions_out = []
    evidence_ids: dict[Any, str] = {}
    for s in range(len(dates)):
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
    return sessions_out, evidence_ids


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
    sessions_out, evidence_ids = compose_sessions(rng, index, speakers, dates, segments)
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
    return {"conversation_id": f"conv{index + 1:02d}", "style": "storylines", "speakers": speakers,
            "sessions": sessions_out, "questions": questions}


def build_recurring(index: int) -> dict[str, Any]:
    """A conversation of the "recurring" style: each speaker's topics come back ``INSTANCES`` times with
    other specifics, and the questions name them. ``index`` counts on from the storyline conversations."""
    rng = random.Random(1000 + index)
    speakers = list(RECURRING_NAMES[index - CONVERSATIONS])
    n_sessions = rng.randrange(22, 31)
    dates = session_dates(rng, n_sessions)
    chosen = rng.sample(TOPICS, 2 * TOPICS_PER_SPEAKER)
    load = [0] * n_sessions
    segments: list[list[list[tuple[str, str, Any]]]] = [[] for _ in range(n_sessions)]
    instances = []  # (topic position, topic, values, sessions)
    for pos, topic in enumerate(chosen):
        me, you = speakers[pos % 2], speakers[1 - pos % 2]
        drawn = {slot: rng.sample(options, INSTANCES) for slot, options in topic["slots"].items()}
        asides = SMALL_TALK + [line for other in chosen if other is not topic for line in other["chatter"]]
        for i in range(INSTANCES):
            values = {slot: drawn[slot][i] for slot in drawn} | {"me": me, "you": you}
            sessions = place_beats(rng, len(topic["beats"]), n_sessions, load, most=5)
            for b, (phrasings, s) in enumerate(zip(topic["beats"], sessions, strict=True)):
                said = rng.choice(phrasings).format(**values)
                segments[s].append([(me, with_aside(rng, said[0].upper() + said[1:], asides), (pos, i, b)),
                                    (you, rng.choice(topic["reactions"]).format(**values), None)])
            others = [s for s in range(n_sessions) if s not in sessions]
            for mention in topic["mentions"]:  # names it, answers nothing
                said = with_aside(rng, mention.format(**values), asides)
                segments[rng.choice(others)].append([(me, said, None), (you, rng.choice(BACKCHANNEL), None)])
            instances.append((pos, topic, values, sessions))
        for text in rng.sample(topic["chatter"], 4):  # the topic's meaning, nothing specific, any session
            segments[rng.randrange(n_sessions)].append(exchange(rng, speakers, text))
    sessions_out, evidence_ids = compose_sessions(rng, index, speakers, dates, segments)
    questions: list[dict[str, Any]] = []

    def ask(category: str, evidence: list[str], phrasings: list[str], answer: str, values: dict[str, str],
            key: str) -> None:
        questions.append({"id": f"conv{index + 1:02d}-q{len(questions) + 1:03d}",
                          "question": rng.choice(phrasings).format(**values), "category": category,
                          "evidence": evidence, "answer": answer.format(**values), "storyline": key})

    compared: set[int] = set()  # topics whose compare questions are asked
    for pos, topic, values, sessions in instances:
        dated = values | {f"date{b}": day_month_year(dates[s]) for b, s in enumerate(sessions)}
        i = sum(p == pos for p, *_ in instances[:instances.index((pos, topic, values, sessions))])
        for category, beats, phrasings, answer in rng.sample(topic["questions"], QUESTIONS_PER_INSTANCE):
            ask(category, [evidence_ids[(pos, i, b)] for b in beats], phrasings, answer, dated, topic["key"])
        _, _, first, first_sessions = next(x for x in instances if x[0] == pos)
        if pos not in compared and i > 0 and all(first_sessions[beat] != sessions[beat] for _, beat, _, _ in
                                                 topic["compare"]):  # the first instance and one told apart from it
            compared.add(pos)
            both = {**{f"{k}0": v for k, v in first.items()}, **{f"{k}1": v for k, v in values.items()},
                    "me": values["me"]}
            for category, beat, phrasings, answer in topic["compare"]:
                ask(category, [evidence_ids[(pos, 0, beat)], evidence_ids[(pos, i, beat)]], phrasings, answer, both,
                    topic["key"])
    return {"conversation_id": f"conv{index + 1:02d}", "style": "recurring", "speakers": speakers,
            "sessions": sessions_out, "questions": questions}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="write the recall development set")
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write conv_*.json to (default: here)")
    out = parser.parse_args(argv).out
    for index in range(CONVERSATIONS + len(RECURRING_NAMES)):
        conversation = build_conversation(index) if index < CONVERSATIONS else build_recurring(index)
        path = out / f"conv_{index + 1:02d}.json"
        path.write_text(json.dumps(conversation, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        turns = sum(len(s["turns"]) for s in conversation["sessions"])
        print(f"{path.name}: {len(conversation['sessions'])} sessions, {turns} turns, "
              f"{len(conversation['questions'])} questions")


if __name__ == "__main__":
    main()
