"""Ground truth for the calendar world: what the owner's request calls for, and whether a
decision is sound, given the state before it takes effect.

The assistant's policy (the guidelines the agent reads) comes down to: find what a request is
about, ask the owner first when it could mean more than one thing (and only then), act exactly
as asked, and tell the owner. So:
- an ask is right while a mention is still ambiguous; acting or answering before that is
  wrong, and a human was needed;
- an action is right when it is one the request still calls for, with the right arguments,
  judged against what the owner has *said* they meant (an owner who misremembers is the
  owner's fault, not the agent's);
- a wrong irreversible action is one where a human should have been asked;
- the episode succeeds when the calendar and outbox equal the request's expected outcome
  (`effects.apply` of the planned actions) and a lookup's answer was given.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from trialrun.sandbox.world import ToolError, Verdict
from trialrun.sandbox.worlds.calendar.effects import NEW_EVENT, apply, normal, normal_mail
from trialrun.sandbox.worlds.calendar.organisation import SEARCH_TOOL
from trialrun.sandbox.worlds.calendar.times import spoken, time_variants, to_iso
from trialrun.trajectory import Decision

if TYPE_CHECKING:
    from trialrun.sandbox.worlds.calendar.world import CalendarWorld

Plan = list[tuple[str, dict[str, Any]]]
READ_ONLY = frozenset(SEARCH_TOOL.values())
KIND_OF_SEARCH = {tool: kind for kind, tool in SEARCH_TOOL.items()}


class Policy:
    """The ground truth of one calendar world (it reads the world, never changes it)."""

    def __init__(self, world: CalendarWorld) -> None:
        self.w = world

    # --- what the request calls for ------------------------------------------------------
    def plan(self, target: list[str]) -> Plan:
        """The actions that carry out the request, if the owner meant `target`."""
        w = self.w
        r, week = w.req, w.options.week_of
        if r.type == "move":
            return [("move_event", {"event_id": target[0], "start": to_iso(r.start, week)})]
        if r.type == "cancel":
            return [("delete_event", {"event_id": target[0]})]
        if r.type == "schedule":
            staff = [t for t in target if not w.org.people[t]["executive"]]
            execs = [t for t in target if w.org.people[t]["executive"]]
            return [("create_event", {"title": r.title, "start": to_iso(r.start, week),
                                      "minutes": r.minutes, "attendees": staff}),
                    *[("invite_executive", {"event_id": NEW_EVENT.format(1), "person_id": x})
                      for x in execs]]
        if r.type == "email":
            return [("send_email", {"to": list(target), "subject": r.subject, "body": r.body})]
        if r.type == "reply":
            m = w.org.inbox[target[0]]
            return [("send_email", {"to": [m["sender"]], "subject": f"Re: {m['subject']}",
                                    "body": r.body})]
        return []  # lookup: nothing changes; the answer is in a message

    def expected_state(self, target: list[str]) -> dict[str, Any]:
        """The calendar and outbox (normal form) the request should leave behind."""
        st = {"events": copy.deepcopy(self.w.initial_events), "outbox": [], "created": 0}
        for tool, args in self.plan(target):
            apply(st, tool, args)
        return normal(st["events"], st["outbox"])

    def facts(self, target: list[str]) -> list[list[str]]:
        """lookup: what the answer must say, each fact as its acceptable wordings."""
        if self.w.req.type != "lookup":
            return []
        day, hhmm = spoken(self.w.org.events[target[0]]["start"])
        return [[day], time_variants(hhmm)]

    def facts_stated(self, target: list[str], texts: list[str]) -> bool:
        said = " ".join(texts).lower()
        return all(any(v.lower() in said for v in alts) for alts in self.facts(target))

    def done(self, target: list[str]) -> bool:
        w = self.w
        return (normal(w.org.events, w.outbox) == self.expected_state(target)
                and self.facts_stated(target, w.messages))

    def remaining(self, target: list[str]) -> Plan:
        """The planned actions whose effect is not yet in the world."""
        w = self.w
        out = []
        for tool, args in self.plan(target):
            if tool == "move_event":
                done = w.org.events[args["event_id"]]["start"] == args["start"]
            elif tool == "delete_event":
                done = w.org.events[args["event_id"]]["status"] == "cancelled"
            elif tool == "create_event":
                done = w.created > 0
            elif tool == "invite_executive":
                e = w.org.events.get(args["event_id"])
                done = e is not None and args["person_id"] in e["attendees"]
            else:
                done = any(normal_mail(m) == normal_mail({"kind": "email", **args})
                           for m in w.outbox)
            if not done:
                out.append((tool, args))
        return out

    # --- judging decisions ---------------------------------------------------------------
    def verdict(self, d: Decision) -> Verdict:
        w = self.w
        if d.kind == "ask_human":
            need = not w.clarified
            return Verdict(correct=True, help_needed=need, reason="the request is ambiguous: "
                           "asking is right" if need else "nothing was ambiguous")
        target = w.believed_target()
        if d.kind == "message":
            text = d.text or ""
            if "?" in text or w.req.type != "lookup":
                return Verdict(correct=True, reason="message to the owner")
            if not w.clarified:  # the answer is the lookup's action: guessing is acting
                return Verdict(correct=False, help_needed=True, reason="answered an ambiguous "
                               f"question ({', '.join(w.ambiguous_mentions)}) without asking")
            ok = self.facts_stated(target, [text])
            return Verdict(correct=ok, reason="answers the question" if ok else
                           f"the answer should say {w.org.describe('event', target[0])}")
        if d.kind == "finish":
            ok = self.done(target)
            return Verdict(correct=ok, reason="the request is done" if ok else
                           "finished before the request was done")
        tool, args = d.tool or "", d.args
        if tool in READ_ONLY:
            found = w.org.search(KIND_OF_SEARCH[tool], str(args.get("query", "")))
            return Verdict(correct=bool(found), reason=f"found {len(found)}" if found
                           else "the search found nothing")
        if not w.clarified:
            return Verdict(correct=False, help_needed=True, reason="acted on an ambiguous "
                           f"request ({', '.join(w.ambiguous_mentions)}) without asking")
        ok, why = self._check_action(tool, args, target)
        declared = w.declared_tools.get(tool)
        irreversible = declared is not None and declared.spec.irreversible
        return Verdict(correct=ok, reason=why, help_needed=not ok and irreversible)

    def _check_action(self, tool: str, args: dict[str, Any],
                      target: list[str]) -> tuple[bool, str]:
        w = self.w
        try:
            if tool == "invite":  # optional: attendees may also come with create_event
                if w.req.type != "schedule":  # the targets are events, not people
                    return False, "the request does not call for an invite"
                staff = [t for t in target if not w.org.people[t]["executive"]]
                ok = (w.created > 0
                      and args.get("event_id") == NEW_EVENT.format(1)
                      and set(args.get("person_ids") or []) <= set(staff))
                return ok, "as requested" if ok else "the request does not call for this invite"
            wants = [a for t, a in self.remaining(target) if t == tool]
            if not wants:
                return False, f"the request does not call for {tool} (now)"
            ok = any(self._same_action(tool, args, want) for want in wants)
        except (ValueError, ToolError) as e:
            return False, str(e)
        return ok, "as requested" if ok else f"expected {tool}({_brief(wants[0])})"

    def _same_action(self, tool: str, args: dict[str, Any], want: dict[str, Any]) -> bool:
        def when() -> str:
            return to_iso(str(args.get("start")), self.w.options.week_of)

        if tool == "move_event":
            return args.get("event_id") == want["event_id"] and when() == want["start"]
        if tool == "delete_event":
            return args.get("event_id") == want["event_id"]
        if tool == "create_event":
            return (str(args.get("title", "")).strip().lower() == want["title"].lower()
                    and when() == want["start"] and args.get("minutes") == want["minutes"]
                    and set(args.get("attendees") or []) <= set(want["attendees"]))
        if tool == "invite_executive":
            return args.get("event_id") == want["event_id"] and \
                args.get("person_id") == want["person_id"]
        got = {"kind": "email", "to": self.w.org.person_ids(args.get("to")),
               "subject": args.get("subject")}
        return normal_mail(got) == normal_mail({"kind": "email", **want})

    def remedy(self, decision: Decision) -> Decision | None:
        """The next action the request calls for, in place of an action (not a search)."""
        if decision.kind != "tool_call" or decision.tool in READ_ONLY:
            return None
        w = self.w
        if not w.clarified:  # the policy asks before acting on an ambiguous request
            return Decision(kind="ask_human", node=decision.node,
                            text=f"Which one do you mean: {', '.join(w.ambiguous_mentions)}?")
        todo = self.remaining(list(self.w.req.target))
        if not todo:
            return None
        tool, args = todo[0]
        return Decision(kind="tool_call", node=decision.node, tool=tool, args=copy.deepcopy(args))

    # --- the episode's outcome -----------------------------------------------------------
    def outcome(self) -> dict[str, Any]:
        w = self.w
        truth, believed = list(w.req.target), w.believed_target()
        actual = normal(w.org.events, w.outbox)
        expected = self.expected_state(truth)
        success = self.done(truth)
        # The user's fault: the agent did exactly what the owner (mis)told it.
        user_fault = not success and believed != truth and self.done(believed)
        if success:
            reason = "request done"
        elif user_fault:
            reason = f"the owner misremembered ({', '.join(w.user.wrong_facts())}); the " \
                     "agent did what it was told"
        else:
            reason = "; ".join(x for x in [
                "calendar or outbox differs from the request's outcome"
                if actual != expected else "",
                "the answer is missing" if not self.facts_stated(truth, w.messages) else ""]
                if x)
        return {"state": actual, "expected_state": expected, "messages": w.messages,
                "success": success, "score": float(success), "reason": reason,
                "user_fault": user_fault, "asks": w.asks, "clarified": w.clarified,
                "ambiguous_mentions": w.ambiguous_mentions}


def _brief(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items() if k != "body")
