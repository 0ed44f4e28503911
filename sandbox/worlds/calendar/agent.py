"""A scripted reference agent for the calendar world, with per-node error knobs.

    search -> clarify (only when a mention matched several items) -> act -> invite -> reply

It searches for each thing the request mentions, asks the owner only when a mention matched
more than one item, then acts and tells the owner. `error_rates: {node: p}` makes it err at a
node with probability p: `search` a typo that finds nothing (it then searches again), `act`
the wrong event or time or subject, `invite` an executive invited to the wrong event, `reply`
a wrong time in a lookup answer. `ask: when_ambiguous | never | always` sets its escalation
behaviour (never: it guesses among the matches).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from trialrun.agents.base import AgentContext, Feedback
from trialrun.agents.scripted import ScriptedAgent, ScriptedOptions
from trialrun.registry import register
from trialrun.sandbox.worlds.calendar.organisation import SEARCH_TOOL
from trialrun.sandbox.worlds.calendar.schema import MENTION_KIND
from trialrun.sandbox.worlds.calendar.times import shift, spoken
from trialrun.trajectory import Decision, Observation

NODES = ("search", "clarify", "act", "invite", "reply", "finish")
ERROR_NODES = ("search", "act", "invite", "reply")


class CalendarAgentOptions(ScriptedOptions):
    error_nodes = ERROR_NODES

    ask: Literal["when_ambiguous", "never", "always"] = Field(
        "when_ambiguous", description="when to ask the owner: only when a mention matched "
        "several items, never (guess among them), or always")


@register("agent", "scripted:calendar")
class ScriptedCalendarAgent(ScriptedAgent):
    nodes = frozenset(NODES)  # every node its decisions name
    Options = CalendarAgentOptions
    options: CalendarAgentOptions
    waits = False  # pure computation

    async def start(self, ctx: AgentContext, first: Observation) -> None:
        await super().start(ctx, first)
        self.req: dict[str, Any] = first.data["request"]
        self.agenda: list[dict[str, Any]] = first.data.get("agenda", [])
        self.kind = MENTION_KIND[self.req["type"]]
        self.mentions: list[str] = list(self.req["mentions"])
        self.cands: list[list[dict[str, Any]]] = []
        self.chosen: list[dict[str, Any]] = []
        self.phase = "search"
        self.typo = False
        self.asked = False
        self.new_event: str | None = None
        self.execs: list[str] = []
        self.report = ""

    # --- helpers ---------------------------------------------------------------------------
    def _label(self, item: dict[str, Any]) -> str:
        if self.kind == "event":
            names = ", ".join(a["name"] for a in item["attendees"])
            return f"{item['title']} on {item['day']} at {item['time']}" + \
                (f" with {names}" if names else "")
        if self.kind == "person":
            return f"{item['name']} ({item['team'] or item['title']})"
        return f"'{item['subject']}' from {item['from']['name']}"

    def _cues(self, item: dict[str, Any]) -> list[str]:
        """Words that single an item out in the owner's answer."""
        if self.kind == "event":
            return [item["title"], item["day"], item["time"],
                    *(a["name"] for a in item["attendees"])]
        if self.kind == "person":
            return [item["name"], item["team"]]
        return [item["subject"], item["from"]["name"]]

    def _choose(self, answer: str | None) -> None:
        said = (answer or "").lower()
        self.chosen = []
        for cands in self.cands:
            if len(cands) == 1:
                self.chosen.append(cands[0])
                continue
            scores = [sum(1 for c in self._cues(x) if c and c.lower() in said) for x in cands]
            best = max(scores)
            # No usable answer (or never asked): guess, as an agent that does not ask must.
            self.chosen.append(cands[scores.index(best)] if best > 0
                               else self.rng.choice(cands))

    def _other_event(self, eid: str | None) -> str | None:
        others = [e["event_id"] for e in self.agenda if e["event_id"] != eid]
        return self.rng.choice(others) if others else eid

    # --- decisions -------------------------------------------------------------------------
    async def decide(self, obs: Observation) -> Decision:
        ph = self.phase
        if ph == "search":
            query = self.mentions[len(self.cands)]
            self.typo = self._err("search")
            if self.typo:
                query += "qx"  # a typo: the search finds nothing and the agent searches again
            return self._call("search", SEARCH_TOOL[self.kind], self.typo, query=query)
        if ph == "clarify":
            ambiguous = [i for i, c in enumerate(self.cands) if len(c) > 1]
            wants_ask = (ambiguous and self.options.ask != "never") or self.options.ask == "always"
            if wants_ask and not self.asked:
                self.asked = True
                return Decision(kind="ask_human", node="clarify",
                                text=self._question(ambiguous), confidence=0.5)
            self._choose(None)
            self.phase = "act"
            return await self.decide(obs)
        if ph == "act":
            return self._act()
        if ph == "invite":
            erred = self._err("invite")
            event = self._other_event(self.new_event) if erred else self.new_event
            return self._call("invite", "invite_executive", erred, event_id=event,
                              person_id=self.execs[0])
        if ph == "reply":
            return self._reply()
        return Decision(kind="finish", node="finish", text=self.report or "done")

    def _question(self, ambiguous: list[int]) -> str:
        if not ambiguous:
            return "I have found what your request is about. Shall I go ahead?"
        parts = [f"'{self.mentions[i]}' could be " + "; ".join(self._label(x)
                                                                for x in self.cands[i])
                 for i in ambiguous]
        return "Your request is ambiguous: " + " / ".join(parts) + ". Which one do you mean?"

    def _act(self) -> Decision:
        r, kind = self.req, self.req["type"]
        first = self.chosen[0]
        erred = self._err("act")
        if kind == "lookup":
            self.phase = "reply"
            return self._reply()
        if kind == "move":
            start = shift(r["start"], 60) if erred else r["start"]
            self.report = f"Moved {first['title']} to {_when(r['start'])}."
            return self._call("act", "move_event", erred, event_id=first["event_id"],
                              start=start)
        if kind == "cancel":
            eid = self._other_event(first["event_id"]) if erred else first["event_id"]
            self.report = f"Cancelled {first['title']} on {first['day']}."
            return self._call("act", "delete_event", erred, event_id=eid)
        if kind == "schedule":
            staff = [p["person_id"] for p in self.chosen if not p["executive"]]
            self.execs = [p["person_id"] for p in self.chosen if p["executive"]]
            start = shift(r["start"], 60) if erred else r["start"]
            self.report = f"Scheduled {r['title']} on {_when(r['start'])} with " + \
                ", ".join(p["name"] for p in self.chosen) + "."
            return self._call("act", "create_event", erred, title=r["title"], start=start,
                              minutes=r["minutes"], attendees=staff)
        if kind == "email":
            subject = "Quick note" if erred else r["subject"]
            self.report = "Sent your email to " + ", ".join(p["name"] for p in self.chosen) + "."
            return self._call("act", "send_email", erred,
                              to=[p["person_id"] for p in self.chosen], subject=subject,
                              body=r["body"])
        subject = first["subject"] if erred else f"Re: {first['subject']}"
        self.report = f"Replied to {first['from']['name']}."
        return self._call("act", "send_email", erred, to=[first["from"]["id"]],
                          subject=subject, body=r["body"])

    def _reply(self) -> Decision:
        erred = self._err("reply")
        text = self.report or "Done."
        if self.req["type"] == "lookup" and self.chosen:
            e = self.chosen[0]
            time = spoken(shift(e["start"], 60))[1] if erred else e["time"]
            text = f"Your {e['title']} is on {e['day']} at {time}."
        self.report = text
        return Decision(kind="message", node="reply", text=text,
                        confidence=self._confidence(erred))

    # --- feedback --------------------------------------------------------------------------
    async def feedback(self, fb: Feedback) -> None:
        d, res = fb.decision, fb.result
        if fb.denied:
            return  # the same phase decides again
        if d.kind == "ask_human":
            self._choose(fb.human_answer)
            self.phase = "act"
            return
        if d.kind == "message":
            self.phase = "finish"
            return
        if d.kind != "tool_call" or res is None:
            return
        if d.tool in SEARCH_TOOL.values():
            found = res.output if res.ok else []
            if not found and self.typo:
                return  # search again, spelled right
            if not found:
                self.report = f"I could not find anything matching '{d.args.get('query')}'."
                self.phase = "reply"
                return
            self.cands.append(found)
            if len(self.cands) == len(self.mentions):
                self.phase = "clarify"
            return
        if not res.ok:
            self.report = f"I could not finish: {res.error}"
            self.phase = "reply"
            return
        if d.tool == "create_event":
            self.new_event = res.output["event_id"]
            self.phase = "invite" if self.execs else "reply"
        elif d.tool == "invite_executive":
            self.execs.pop(0)
            self.phase = "invite" if self.execs else "reply"
        else:
            self.phase = "reply"


def _when(iso: str) -> str:
    return " at ".join(spoken(iso))
