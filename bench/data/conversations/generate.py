"""Compose the recall development set from the hand-written facts in ``storylines.py``, ``recurring.py`` and
``everyday.py``.

    python bench/data/conversations/generate.py            # rewrites conv_*.json beside this file
    python bench/data/conversations/generate.py --out DIR  # writes them to DIR instead

Deterministic (one seed per conversation): the committed files are what this script writes. Each
conversation is two speakers chatting over 12-30 dated sessions, in one of three styles (README.md):
"storylines" (conv_01-08: each speaker owns several storylines whose beats fall in different sessions,
surrounded by small talk and distractor turns), "recurring" (conv_09-14: each speaker comes back to a
few topics three times over, each time with other names, places and numbers) and "everyday" (conv_15-20:
each speaker's life threads come back in most sessions in long turns, the facts asked about buried in them).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from everyday import FEELINGS, THREADS  # noqa: E402
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
EVERYDAY_NAMES = [("Inès", "Björn"), ("Siobhán", "Kwabena"), ("Joaquín", "Mei"), ("Ayşe", "Radek"),
                  ("Dário", "Ingrid"), ("Chiara", "Oluwaseun")]
THREADS_PER_SPEAKER = 4
THREAD_COMES_UP = 0.85  # chance that a thread with no news comes up in a session anyway
FOLLOW_UP = 0.4  # chance that its owner says more after the other's reply
EXTRA_LINES = (0, 1, 1, 2)  # how many feelings or other threads' news an everyday turn adds to its thread's
# per thread, the categories its facts are asked in (alternating threads), and how many multi-hop questions
ASKED_AS = (("single-hop", "single-hop", "single-hop", "temporal", "temporal", "paraphrased"),
            ("single-hop", "single-hop", "temporal", "temporal", "paraphrased", "paraphrased"))
MULTI_HOPS = (2, 1)


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
        if len(set(sessions)) == n_beats and took(load, sessions, most):
            return sessions
    raise RuntimeError("could not place beats")


def took(load: list[int], sessions: list[int], most: int) -> bool:
    """Count ``sessions`` in ``load`` if each holds fewer than ``most`` evidence turns yet."""
    if any(load[s] >= most for s in sessions):
        return False
    for s in sessions:
        load[s] += 1
    return True


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
    questions: list[dict[str, Any]] = []
    problems: list[str] = []
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


def spread(rng: random.Random, n_facts: int, n_sessions: int, load: list[int], most: int = 4) -> list[int]:
    """Sessions for a thread's facts: distinct, in order, at most ``most`` facts (of any thread) a session."""
    for _ in range(1000):
        sessions = sorted(rng.sample(range(n_sessions), n_facts))
        if took(load, sessions, most):
            return sessions
    raise RuntimeError("could not place facts")


def next_line(rng: random.Random, deck: list[str], lines: list[str], fits: Callable[[str], bool]) -> str:
    """The deck's next line that ``fits``, refilling the deck with ``lines`` shuffled when none does: all of a
    thread's lines come up before any comes back."""
    if not any(map(fits, deck)):
        deck.extend(rng.sample(lines, len(lines)))
    return deck.pop(next(i for i, line in enumerate(deck) if fits(line)))


def everyday_turn(rng: random.Random, first: str, deck: list[str], own: list[str], elsewhere: list[str],
                  avoid: set[str], names: set[str]) -> str:
    """``first`` with the thread's next line and 0-2 feelings or other threads' news, in any order, as people
    write; no added line shares a stem with ``avoid`` (a paraphrased question's words), so
    the question still shares none with its evidence turn."""

    def fits(line: str) -> bool:
        return line != first and not shared_words(avoid, content_words(line, names))

    said = [next_line(rng, deck, own, fits)]
    said.extend(rng.choice([line for line in rng.choice((FEELINGS, elsewhere)) if fits(line)])
                for _ in range(rng.choice(EXTRA_LINES)))
    said.insert(rng.randrange(len(said) + 1), first)
    return " ".join(said)


def build_everyday(index: int) -> dict[str, Any]:
    """A conversation of the "everyday" style: each speaker's life threads come back in most sessions, mostly
    as updates that answer nothing, and each fact asked about is one sentence of a longer turn. ``index``
    counts on from the recurring conversations."""
    rng = random.Random(1000 + index)
    speakers = list(EVERYDAY_NAMES[index - CONVERSATIONS - len(RECURRING_NAMES)])
    names = set(speakers)
    n_sessions = rng.randrange(23, 30)
    dates = session_dates(rng, n_sessions)
    chosen = rng.sample(THREADS, 2 * THREADS_PER_SPEAKER)
    used: set[str] = set()  # no specific is given to two slots of one conversation
    filled = []
    for pos, thread in enumerate(chosen):
        values = {"me": speakers[pos % 2], "you": speakers[1 - pos % 2]}
        for slot, options in thread["slots"].items():
            values[slot] = rng.choice([option for option in options if option not in used])
            used.add(values[slot])
        filled.append(values)
    load = [0] * n_sessions
    segments: list[list[list[tuple[str, str, Any]]]] = [[] for _ in range(n_sessions)]
    plans = []  # (pos, thread, values, the facts' sessions, the facts' (category, question))
    news_of = {speaker: [line.format(**filled[p]) for p in range(n, len(chosen), 2) for line in chosen[p]["updates"]]
               for n, speaker in enumerate(speakers)}
    for pos, (thread, values) in enumerate(zip(chosen, filled, strict=True)):
        me, you = values["me"], values["you"]
        own = [line.format(**values) for line in thread["updates"]]
        elsewhere = [line for line in news_of[me] if line not in own]
        sessions = spread(rng, len(thread["facts"]), n_sessions, load)
        categories = list(ASKED_AS[pos % 2])
        rng.shuffle(categories)
        asked = [(category, rng.choice(fact[category]).format(**values, when=month_year(dates[s])))
                 for fact, category, s in zip(thread["facts"], categories, sessions, strict=True)]
        told = {s: f for f, s in enumerate(sessions)}
        deck: list[str] = []
        for s in range(n_sessions):
            if s in told:
                category, question = asked[told[s]]
                avoid = content_words(question, names) if category == "paraphrased" else set()
                first, key = rng.choice(thread["facts"][told[s]]["say"]).format(**values), (pos, told[s])
            elif rng.random() < THREAD_COMES_UP:
                avoid, first, key = set(), next_line(rng, deck, own, lambda line: True), None
            else:
                continue
            reply = rng.choice(BACKCHANNEL)
            if rng.random() < 0.5:  # with substance: a question back, a memory of their own
                reply = rng.choice(thread["reactions"]).format(**values)
            elif rng.random() < 0.5:  # or on to their own news
                reply += " " + rng.choice(news_of[you])
            segment = [(me, everyday_turn(rng, first, deck, own, elsewhere, avoid, names), key), (you, reply, None)]
            if rng.random() < FOLLOW_UP:  # and a bit more about it
                more = next_line(rng, deck, own, lambda line: True)
                segment.append((me, everyday_turn(rng, more, deck, own, elsewhere, set(), names), None))
            segments[s].append(segment)
        plans.append((pos, thread, values, sessions, asked))
    sessions_out, evidence_ids = compose_sessions(rng, index, speakers, dates, segments)
    turn_text = {t["id"]: t["text"] for session in sessions_out for t in session["turns"]}
    questions: list[dict[str, Any]] = []
    problems: list[str] = []

    def ask(category: str, evidence: list[str], text: str, answer: str, key: str) -> None:
        shared = shared_words(content_words(text, names),
                              set().union(*(content_words(turn_text[e], names) for e in evidence)))
        if category == "paraphrased" and shared:
            problems.append(f"paraphrased question shares {sorted(shared)} with its evidence: {text!r}")
        if category == "single-hop" and not shared:
            problems.append(f"single-hop question shares no word with its evidence: {text!r}")
        questions.append({"id": f"conv{index + 1:02d}-q{len(questions) + 1:03d}", "question": text,
                          "category": category, "evidence": evidence, "answer": answer, "storyline": key})

    for pos, thread, values, sessions, asked in plans:
        for f, ((category, question), s) in enumerate(zip(asked, sessions, strict=True)):
            answer = day_month_year(dates[s]) if category == "temporal" else thread["facts"][f]["answer"]
            ask(category, [evidence_ids[(pos, f)]], question, answer.format(**values), thread["key"])
        for facts, phrasings, answer in rng.sample(thread["multi_hop"], MULTI_HOPS[pos % 2]):
            ask("multi-hop", [evidence_ids[(pos, f)] for f in facts], rng.choice(phrasings).format(**values),
                answer.format(**values), thread["key"])
    if problems:
        raise ValueError("\n".join(problems))
    return {"conversation_id": f"conv{index + 1:02d}", "style": "everyday", "speakers": speakers,
            "sessions": sessions_out, "questions": questions}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="write the recall development set")
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write conv_*.json to (default: here)")
    out = parser.parse_args(argv).out
    builders = [build_conversation] * CONVERSATIONS + [build_recurring] * len(RECURRING_NAMES) + \
        [build_everyday] * len(EVERYDAY_NAMES)
    for index, build in enumerate(builders):
        conversation = build(index)
        path = out / f"conv_{index + 1:02d}.json"
        path.write_text(json.dumps(conversation, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        turns = sum(len(s["turns"]) for s in conversation["sessions"])
        print(f"{path.name}: {len(conversation['sessions'])} sessions, {turns} turns, "
              f"{len(conversation['questions'])} questions")


if __name__ == "__main__":
    main()
