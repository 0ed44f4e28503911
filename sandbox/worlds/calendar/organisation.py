"""The owner's organisation: who works there, the owner's calendar and inbox, and search.

A world is seeded with background colleagues, meetings and email around what the task plants,
so that the agent has to search. Background content never matches the request's mentions:
whatever the seed, only planted items can match, so a task is ambiguous exactly when its
author planted it so. Search is plain substring matching, the same for the tools the agent
calls and for the world's own check of which items a mention matches.
"""

from __future__ import annotations

import random
from typing import Any

from trialrun.sandbox.world import ToolError
from trialrun.sandbox.worlds.calendar.schema import CalendarOptions, CalendarTask
from trialrun.sandbox.worlds.calendar.times import WEEKDAYS, spoken, to_iso

FIRST_NAMES = ["Ada", "Bruno", "Carmen", "Dmitri", "Esther", "Felix", "Greta", "Hugo", "Ines",
               "Jonas", "Keiko", "Luis", "Marta", "Nils", "Olga", "Pablo", "Rhea", "Stefan",
               "Ulla", "Viktor", "Wanda", "Xavier", "Yara", "Zeno"]
LAST_NAMES = ["Andersen", "Bianchi", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia",
              "Horvat", "Ito", "Jansen", "Keller", "Lindqvist", "Marino", "Nowak", "Ortiz",
              "Petrov", "Quist", "Romero"]
TEAMS = ["Finance", "Design", "Engineering", "Sales", "Marketing", "Legal", "People", "Support"]
STAFF_TITLES = ["Analyst", "Engineer", "Designer", "Manager", "Specialist", "Coordinator"]
EXEC_TITLES = ["CEO", "CFO", "CTO", "COO", "VP Sales", "VP Engineering", "VP Marketing"]
BG_TITLES = ["Standup", "Quarterly kickoff", "Vendor call", "Lunch and learn", "Interview",
             "Customer demo", "Security training", "Office hours", "Hiring debrief",
             "Board prep", "Focus time", "Coffee chat"]
BG_SUBJECTS = ["Expense report", "Parking permits", "Team lunch on Friday", "Laptop refresh",
               "Holiday calendar", "Newsletter draft", "Quarterly numbers", "Travel booking"]
DOMAIN = "northwind.example"
# The tool that searches each kind of item.
SEARCH_TOOL = {"event": "search_events", "person": "search_people", "email": "search_email"}


def matches(query: str, *texts: str) -> bool:
    """The search semantics every tool and the ambiguity check share: substring, any case."""
    q = query.strip().lower()
    return bool(q) and any(q in t.lower() for t in texts)


class Organisation:
    """People (the owner is 'me'), the owner's calendar (`events`, which the tools change)
    and inbox, as plain dicts keyed by id."""

    def __init__(self) -> None:
        self.people: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.inbox: dict[str, dict[str, Any]] = {}

    @classmethod
    def seed(cls, options: CalendarOptions, spec: CalendarTask,
             rng: random.Random) -> Organisation:
        """The task's planted people, events and emails among background ones drawn from
        `rng` (in this order: the draws are part of what a seed means)."""
        org = cls()
        req = spec.request

        def clashes(*texts: str) -> bool:
            return any(matches(m, *texts) for m in req.mentions)

        org.add_person("me", options.owner, "", "", False)
        for p in spec.people:
            org.add_person(p.id, p.name, p.team, p.title, p.executive)
        taken = {p["name"] for p in org.people.values()}
        for i in range(options.people):
            for _ in range(50):
                name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
                if name not in taken and not clashes(name):
                    break
            else:
                continue
            taken.add(name)
            executive = i < options.executives
            org.add_person(f"bg-p{i}", name, rng.choice(TEAMS),
                           rng.choice(EXEC_TITLES if executive else STAFF_TITLES), executive)

        week = options.week_of
        for e in spec.events:
            org.events[e.id] = {"id": e.id, "title": e.title, "start": to_iso(e.start, week),
                                "minutes": e.minutes, "attendees": list(e.attendees),
                                "status": "confirmed"}
        busy = {e["start"] for e in org.events.values()}
        if req.start:
            busy.add(to_iso(req.start, week))
        slots = [to_iso(f"{d} {h:02d}:{m:02d}", week) for d in WEEKDAYS for h in range(9, 17)
                 for m in (0, 30)]
        free = [s for s in slots if s not in busy]
        staff = [pid for pid in org.people if pid.startswith("bg-p")]
        titles = [t for t in BG_TITLES if not clashes(t)]
        for i in range(min(options.events, len(free))):
            start = free.pop(rng.randrange(len(free)))
            attendees = sorted(rng.sample(staff, min(len(staff), rng.randint(1, 3))))
            org.events[f"bg-e{i}"] = {"id": f"bg-e{i}", "title": rng.choice(titles or ["Busy"]),
                                      "start": start, "minutes": rng.choice([30, 30, 60]),
                                      "attendees": attendees, "status": "confirmed"}

        for m in spec.emails:
            org.inbox[m.id] = {"id": m.id, "sender": m.sender, "subject": m.subject,
                               "body": m.body, "received": to_iso(m.received, week)}
        subjects = [s for s in BG_SUBJECTS if not clashes(s)]
        for i in range(options.emails if staff and subjects else 0):
            org.inbox[f"bg-m{i}"] = {
                "id": f"bg-m{i}", "sender": rng.choice(staff), "subject": rng.choice(subjects),
                "body": "See the details inside.",
                "received": to_iso(f"mon {rng.randint(7, 9):02d}:{rng.choice([0, 30]):02d}",
                                   week)}
        return org

    def add_person(self, pid: str, name: str, team: str, title: str, executive: bool) -> None:
        email = f"{name.lower().replace(' ', '.')}@{DOMAIN}"
        if any(p["email"] == email for p in self.people.values()):
            email = f"{name.lower().replace(' ', '.')}.{pid}@{DOMAIN}"
        self.people[pid] = {"id": pid, "name": name, "email": email, "team": team,
                            "title": title, "executive": executive}

    # --- looking things up -------------------------------------------------------------
    def agenda(self) -> list[dict[str, Any]]:
        """The owner's confirmed events, in time order."""
        live = [e for e in self.events.values() if e["status"] == "confirmed"]
        return sorted(live, key=lambda e: (e["start"], e["id"]))

    def search(self, kind: str, query: str) -> list[dict[str, Any]]:
        """Events, people (never the owner) or emails that `query` matches, in a stable order.
        An empty query matches no person or email, and every event: the whole agenda (a
        request's mentions are never blank, so the ambiguity check is not affected)."""
        if kind == "event":
            if not query.strip():
                return self.agenda()
            return [e for e in self.agenda() if matches(
                query, e["title"], *(self.people[a]["name"] for a in e["attendees"]))]
        if kind == "person":
            return [p for pid, p in self.people.items()
                    if pid != "me" and matches(query, p["name"], p["email"])]
        return [m for m in sorted(self.inbox.values(), key=lambda m: (m["received"], m["id"]))
                if matches(query, m["subject"], m["body"], self.people[m["sender"]]["name"])]

    def live_event(self, event_id: str) -> dict[str, Any]:
        """A confirmed event of the owner's; ToolError for any other id."""
        e = self.events.get(event_id)
        if e is None or e["status"] != "confirmed":
            raise ToolError(f"no event {event_id!r} in the owner's calendar")
        return e

    def person_ids(self, refs: Any) -> list[str]:
        """Person ids from ids or email addresses; ToolError for the owner or a stranger."""
        if not isinstance(refs, list) or not refs:
            raise ToolError("give a non-empty list of person ids or email addresses")
        by_email = {p["email"]: pid for pid, p in self.people.items()}
        out = []
        for r in refs:
            pid = r if r in self.people else by_email.get(str(r).lower())
            if pid is None or pid == "me":
                raise ToolError(f"no colleague {r!r}; use search_people")
            out.append(pid)
        return out

    # --- what the agent sees -------------------------------------------------------------
    def event_out(self, e: dict[str, Any]) -> dict[str, Any]:
        day, hhmm = spoken(e["start"])
        return {"event_id": e["id"], "title": e["title"], "start": e["start"], "day": day,
                "time": hhmm, "minutes": e["minutes"],
                "attendees": [{"id": a, "name": self.people[a]["name"]} for a in e["attendees"]]}

    @staticmethod
    def person_out(p: dict[str, Any]) -> dict[str, Any]:
        return {"person_id": p["id"], "name": p["name"], "email": p["email"], "team": p["team"],
                "title": p["title"], "executive": p["executive"]}

    def email_out(self, m: dict[str, Any]) -> dict[str, Any]:
        s = self.people[m["sender"]]
        return {"email_id": m["id"], "from": {"id": s["id"], "name": s["name"],
                                              "email": s["email"]},
                "subject": m["subject"], "body": m["body"], "received": m["received"]}

    def describe(self, kind: str, item_id: str) -> str:
        """How the owner would point at an item: unique words an assistant can match on."""
        if kind == "event":
            e = self.events[item_id]
            day, hhmm = spoken(e["start"])
            names = " and ".join(self.people[a]["name"] for a in e["attendees"])
            return f"the {e['title']}{' with ' + names if names else ''} on {day} at {hhmm}"
        if kind == "person":
            p = self.people[item_id]
            return f"{p['name']}{' from ' + p['team'] if p['team'] else ''}"
        m = self.inbox[item_id]
        return f"the email from {self.people[m['sender']]['name']} titled '{m['subject']}'"
