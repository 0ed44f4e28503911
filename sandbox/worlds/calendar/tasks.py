"""Calendar task variants from a seed, and the owner's words for a request.

`tasks: {generate: 200, seed: 7, difficulty: hard, params: {...}}` draws tasks from a seeded
RNG of its own (never the global one), so the same seed gives the same tasks everywhere. A
generated task plants the people, events or emails its request is about, plus distractors
that do not match; an ambiguous one plants a second match (a namesake, another meeting with
the same keyword, a second email on the subject). Harder tasks are ambiguous more often, have
more distractors, and schedule with two people at once.
"""

from __future__ import annotations

import random
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trialrun.sandbox.worlds.calendar.organisation import EXEC_TITLES, STAFF_TITLES, TEAMS
from trialrun.sandbox.worlds.calendar.schema import REQUEST_TYPES, CalendarRequest, RequestType
from trialrun.sandbox.worlds.calendar.times import MONDAY, WEEKDAYS, spoken, to_iso

GEN_FIRST = ["Sam", "Jordan", "Priya", "Dana", "Kofi", "Lena", "Mateo", "Noor", "Ravi", "Yuki",
             "Elif", "Tomas", "Ines", "Omar", "Hana", "Bram"]
GEN_LAST = ["Patel", "Okafor", "Lee", "Kim", "Novak", "Silva", "Haddad", "Larsen", "Moreau",
            "Rossi", "Osei", "Tanaka", "Weber", "Quinn"]
GEN_KEYWORDS = {"sync": ["Weekly sync", "Roadmap sync", "Sales sync", "Design sync"],
                "review": ["Budget review", "Design review", "Contract review", "Code review"],
                "planning": ["Sprint planning", "Offsite planning", "Headcount planning"],
                "retro": ["Sprint retro", "Project retro", "Launch retro"]}
GEN_SUBJECTS = {"offsite": ["Offsite agenda", "Offsite venue"],
                "invoice": ["Invoice 4471", "Invoice question"],
                "launch": ["Launch checklist", "Launch date"],
                "contract": ["Contract renewal", "Contract redlines"]}
GEN_BODIES = ["Thanks, that works for me.", "Can we talk about this on Thursday?",
              "Please send me the latest numbers.", "I'll be there."]
GEN_TITLES = ["Kickoff", "Pricing discussion", "Partner intro", "Hiring chat"]


class GenerateParams(BaseModel):
    """`tasks.params` of a generate block."""

    model_config = ConfigDict(extra="forbid")

    ambiguous_rate: float | None = Field(None, ge=0, le=1, description="default by difficulty")
    types: list[RequestType] = Field(
        default_factory=list, description="request types to draw from (default: all)")
    user_error_rate: float = Field(0.0, ge=0, le=1, description="the owner misremembers")
    executive_rate: float = Field(0.3, ge=0, le=1, description="schedule: an invitee is an exec")


def generate(n: int, seed: int, difficulty: str = "medium",
             **params: Any) -> list[dict[str, Any]]:
    """`n` task dicts (ids gen-0000-<type>[-ambiguous]); `params` as in GenerateParams."""
    p = GenerateParams.model_validate(params)
    rng = random.Random(f"calendar-tasks:{seed}:{difficulty}")
    return [_generate(rng, i, difficulty, p) for i in range(n)]


def describe_request(r: CalendarRequest, week_of: date) -> str:
    """The owner's words for a request (used by generated tasks and when no instruction)."""
    when = ""
    if r.start:
        day, hhmm = spoken(to_iso(r.start, week_of))
        when = f"{day} at {hhmm}"
    m = r.mentions[0]
    match r.type:
        case "move":
            return f"Move my meeting with {m} to {when}." if m[:1].isupper() else \
                f"Move the {m} to {when}."
        case "cancel":
            return f"Cancel my meeting with {m}." if m[:1].isupper() else f"Cancel the {m}."
        case "lookup":
            return f"When is my meeting with {m}?" if m[:1].isupper() else f"When is the {m}?"
        case "schedule":
            return f"Set up a {r.minutes}-minute '{r.title}' with {' and '.join(r.mentions)} " \
                   f"on {when}."
        case "email":
            return f"Email {' and '.join(r.mentions)} with the subject '{r.subject}': {r.body}"
    return f"Reply to the email about {m}: {r.body}"


def _generate(rng: random.Random, i: int, difficulty: str, p: GenerateParams) -> dict[str, Any]:
    rate = p.ambiguous_rate if p.ambiguous_rate is not None else \
        {"easy": 0.0, "medium": 0.3, "hard": 0.5}.get(difficulty, 0.3)
    extra = {"easy": 0, "medium": 1, "hard": 3}.get(difficulty, 1)
    kind = rng.choice(p.types or list(REQUEST_TYPES))
    amb = rng.random() < rate
    firsts = rng.sample(GEN_FIRST, len(GEN_FIRST))
    people: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    emails: list[dict[str, Any]] = []
    slots = [f"{d} {h:02d}:{m:02d}" for d in WEEKDAYS for h in range(9, 17) for m in (0, 30)]
    rng.shuffle(slots)

    def person(first: str, executive: bool = False) -> str:
        pid = f"p{len(people) + 1}"
        last = rng.choice([x for x in GEN_LAST
                           if f"{first} {x}" not in {q["name"] for q in people}])
        people.append({"id": pid, "name": f"{first} {last}", "team": rng.choice(TEAMS),
                       "title": rng.choice(EXEC_TITLES if executive else STAFF_TITLES),
                       "executive": executive})
        return pid

    def event(title: str, attendees: list[str]) -> str:
        eid = f"e{len(events) + 1}"
        events.append({"id": eid, "title": title, "start": slots.pop(),
                       "minutes": rng.choice([30, 45, 60]), "attendees": attendees})
        return eid

    def distractor_people(k: int) -> None:
        for _ in range(k):
            person(firsts.pop())

    request: dict[str, Any] = {"type": kind}
    if kind in ("move", "cancel", "lookup"):
        by_person = rng.random() < 0.5
        if by_person:
            first = firsts.pop()
            target_person = person(first)
            target = event(rng.choice(GEN_TITLES), [target_person])
            if amb:  # another meeting with a namesake (or the same person)
                other = person(first) if rng.random() < 0.6 else target_person
                event(rng.choice(GEN_TITLES), [other])
            mention = first
        else:
            keyword = rng.choice(sorted(GEN_KEYWORDS))
            titles = rng.sample(GEN_KEYWORDS[keyword], 2 if amb else 1)
            target = event(titles[0], [person(firsts.pop())])
            for t in titles[1:]:
                event(t, [person(firsts.pop())])
            mention = keyword
            others = [k for k in GEN_KEYWORDS if k != keyword]
            for _ in range(extra):  # other meetings that do not match
                event(rng.choice(GEN_KEYWORDS[rng.choice(others)]), [person(firsts.pop())])
        if by_person:
            for _ in range(extra):
                event(rng.choice(GEN_TITLES), [person(firsts.pop())])
        request |= {"mentions": [mention], "target": [target]}
        if kind == "move":
            request["start"] = slots.pop()
    elif kind in ("schedule", "email"):
        count = 2 if kind == "schedule" and difficulty == "hard" else 1
        mentions, targets = [], []
        for j in range(count):
            first = firsts.pop()
            execs = kind == "schedule" and rng.random() < p.executive_rate
            # Ambiguity goes on the first mention; a namesake may be the executive.
            if amb and j == 0:
                pair = [person(first, execs), person(first, not execs and rng.random() < 0.5)]
                rng.shuffle(pair)
                targets.append(pair[0])
            else:
                targets.append(person(first, execs))
            mentions.append(first)
        distractor_people(extra)
        request |= {"mentions": mentions, "target": targets}
        if kind == "schedule":
            request |= {"title": rng.choice(GEN_TITLES), "start": slots.pop(),
                        "minutes": rng.choice([30, 45, 60])}
        else:
            request |= {"subject": rng.choice(["Agenda", "Follow-up", "Numbers for Q3"]),
                        "body": rng.choice(GEN_BODIES)}
    else:  # reply
        keyword = rng.choice(sorted(GEN_SUBJECTS))
        subjects = rng.sample(GEN_SUBJECTS[keyword], 2 if amb else 1)
        for s in subjects:
            emails.append({"id": f"m{len(emails) + 1}", "sender": person(firsts.pop()),
                           "subject": s, "body": "Details inside.",
                           "received": f"mon {rng.randint(7, 8):02d}:{rng.choice([0, 30]):02d}"})
        others = [k for k in GEN_SUBJECTS if k != keyword]
        for _ in range(extra):
            emails.append({"id": f"m{len(emails) + 1}", "sender": person(firsts.pop()),
                           "subject": rng.choice(GEN_SUBJECTS[rng.choice(others)]),
                           "body": "Details inside.", "received": "mon 07:00"})
        request |= {"mentions": [keyword], "target": ["m1"], "body": rng.choice(GEN_BODIES)}
    spec = CalendarRequest.model_validate(request)
    task: dict[str, Any] = {
        "id": f"gen-{i:04d}-{kind}{'-ambiguous' if amb else ''}",
        "instruction": describe_request(spec, MONDAY), "ambiguous": amb,
        "people": people, "events": events, "emails": emails, "request": request,
    }
    if amb and p.user_error_rate > 0:
        task["user"] = {"error_rate": p.user_error_rate}
    return task
