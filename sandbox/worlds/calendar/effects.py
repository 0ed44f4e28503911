"""What each calendar action does, and the normal form in which outcomes are compared.

The tools apply their effect through `apply`, and the ground truth derives the state a request
should leave by applying the planned actions to the initial calendar with the same function,
so "what the agent did" and "what the request called for" are computed the same way. `normal`
is what success compares: titles and subjects in any case, attendees in any order.
"""

from __future__ import annotations

from typing import Any

NEW_EVENT = "new-{}"  # ids of events the agent creates: new-1, new-2, ...


def apply(st: dict[str, Any], tool: str, args: dict[str, Any]) -> str | None:
    """Apply one effect to a state {events, outbox, created}; returns a new event's id."""
    events, outbox = st["events"], st["outbox"]
    if tool == "create_event":
        st["created"] += 1
        eid = NEW_EVENT.format(st["created"])
        events[eid] = {"id": eid, "title": args["title"], "start": args["start"],
                       "minutes": args["minutes"], "attendees": list(args["attendees"]),
                       "status": "confirmed"}
        return eid
    if tool == "move_event":
        events[args["event_id"]]["start"] = args["start"]
    elif tool == "delete_event":
        e = events[args["event_id"]]
        e["status"] = "cancelled"
        if e["attendees"]:
            outbox.append({"kind": "cancellation", "to": list(e["attendees"]),
                           "subject": f"Cancelled: {e['title']}", "event_id": e["id"]})
    elif tool == "invite":
        e = events[args["event_id"]]
        e["attendees"] += [p for p in args["person_ids"] if p not in e["attendees"]]
    elif tool == "invite_executive":
        e = events[args["event_id"]]
        if args["person_id"] not in e["attendees"]:
            e["attendees"].append(args["person_id"])
        outbox.append({"kind": "invitation", "to": [args["person_id"]],
                       "subject": f"Invitation: {e['title']}", "event_id": e["id"]})
    elif tool == "send_email":
        outbox.append({"kind": "email", "to": list(args["to"]), "subject": args["subject"],
                       "body": args["body"]})
    return None


def normal_mail(m: dict[str, Any]) -> list[Any]:
    return [m["kind"], sorted(m["to"]), str(m.get("subject", "")).strip().lower(),
            m.get("event_id")]


def normal(events: dict[str, Any], outbox: list[dict[str, Any]]) -> dict[str, Any]:
    """The calendar and outbox as success compares them."""
    return {
        "events": {eid: {"title": e["title"].strip().lower(), "start": e["start"],
                         "minutes": e["minutes"], "attendees": sorted(e["attendees"]),
                         "status": e["status"]} for eid, e in sorted(events.items())},
        "outbox": sorted(normal_mail(m) for m in outbox),
    }
