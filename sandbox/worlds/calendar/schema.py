"""What a scenario may say about the calendar world: its options and each task's fields.

`CalendarOptions` is the scenario's `world:` block (the organisation around the owner);
`CalendarTask` is what one task plants in it (people, events, emails) and the owner's request,
both as the owner put it (`mentions`) and as they meant it (`target`). Every model forbids
unknown keys and checks references between planted items, so that a typo or a dangling id is
a load-time error at the task's line, not a surprise at run time.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trialrun.sandbox.worlds.calendar.times import DAY_NAMES, MONDAY, check_when

RequestType = Literal["move", "cancel", "lookup", "schedule", "email", "reply"]
REQUEST_TYPES: tuple[str, ...] = ("move", "cancel", "lookup", "schedule", "email", "reply")
# Which part of the organisation a request's mentions are searched in.
MENTION_KIND = {"move": "event", "cancel": "event", "lookup": "event", "schedule": "person",
                "email": "person", "reply": "email"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CalendarOptions(_Strict):
    """The scenario's `world:` options: the background organisation and the owner's week."""

    people: int = Field(16, ge=0, le=5000, description="background colleagues")
    executives: int = Field(3, ge=0, le=100, description="how many of those are executives")
    events: int = Field(8, ge=0, le=40, description="background events in the owner's week")
    emails: int = Field(6, ge=0, le=5000, description="background emails in the inbox")
    owner: str = "Alex Morgan"
    week_of: date = Field(MONDAY, description="the Monday of the simulated week")

    @field_validator("week_of")
    @classmethod
    def _monday(cls, v: date) -> date:
        if v.weekday() != 0:
            raise ValueError(f"{v} is a {DAY_NAMES[v.weekday()]}, not a Monday")
        return v


class PlantedPerson(_Strict):
    id: str
    name: str
    team: str = ""
    title: str = ""
    executive: bool = False


class PlantedEvent(_Strict):
    id: str
    title: str
    start: str = Field(description="'tue 10:00' or '2025-06-03T10:00'")
    minutes: int = Field(30, gt=0, le=600)
    attendees: list[str] = Field(default_factory=list, description="planted person ids")

    _start = field_validator("start")(classmethod(lambda cls, v: check_when(v)))


class PlantedEmail(_Strict):
    id: str
    sender: str = Field(description="a planted person id")
    subject: str
    body: str = ""
    received: str = "mon 09:00"

    _received = field_validator("received")(classmethod(lambda cls, v: check_when(v)))


class CalendarRequest(_Strict):
    """What the owner asked, as the owner put it (`mentions`) and as they meant it (`target`)."""

    type: RequestType
    mentions: list[str] = Field(description="how the owner refers to it: a name, a keyword")
    target: list[str] = Field(description="what the owner means, one id per mention: event "
                              "ids (move, cancel, lookup), person ids (schedule, email), email "
                              "ids (reply)")
    start: str | None = Field(None, description="move, schedule: the new start")
    minutes: int = Field(30, gt=0, le=600, description="schedule: the length")
    title: str = Field("", description="schedule: the event title")
    subject: str = Field("", description="email: the subject")
    body: str = Field("", description="email, reply: what to say")

    @field_validator("mentions", "target", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _consistent(self) -> CalendarRequest:
        if not self.mentions:
            raise ValueError("mentions must not be empty")
        if any(not m.strip() for m in self.mentions):
            raise ValueError("a mention must not be blank: it is how the owner names what "
                             "the request is about")
        if len(self.mentions) != len(self.target):
            raise ValueError(f"{len(self.mentions)} mention(s) but {len(self.target)} "
                             "target(s): give one target per mention")
        if len({m.lower() for m in self.mentions}) != len(self.mentions):
            raise ValueError("mentions must be distinct")
        if len(self.mentions) > 1 and self.type not in ("schedule", "email"):
            raise ValueError(f"a {self.type} request is about one thing: one mention")
        if self.type in ("move", "schedule"):
            if self.start is None:
                raise ValueError(f"a {self.type} request needs start")
            check_when(self.start)
        if self.type == "schedule" and not self.title:
            raise ValueError("a schedule request needs title")
        if self.type == "email" and not self.subject:
            raise ValueError("an email request needs subject")
        return self


class CalendarTask(_Strict):
    """One task's world-specific fields: what it plants, and the owner's request."""

    people: list[PlantedPerson] = Field(default_factory=list)
    events: list[PlantedEvent] = Field(default_factory=list)
    emails: list[PlantedEmail] = Field(default_factory=list)
    request: CalendarRequest

    @model_validator(mode="after")
    def _references(self) -> CalendarTask:
        ids = [x.id for x in (*self.people, *self.events, *self.emails)]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate ids: {', '.join(dupes)}")
        reserved = [i for i in ids if i == "me" or i.startswith(("bg-", "new-"))]
        if reserved:
            raise ValueError(f"ids {', '.join(reserved)} are reserved ('me', 'bg-*', 'new-*')")
        people = {p.id for p in self.people}
        for e in self.events:
            bad = [a for a in e.attendees if a not in people]
            if bad:
                raise ValueError(f"event {e.id}: attendees {', '.join(bad)} are not planted "
                                 f"people ({', '.join(sorted(people)) or 'none'})")
        for m in self.emails:
            if m.sender not in people:
                raise ValueError(f"email {m.id}: sender {m.sender!r} is not a planted person")
        kind = MENTION_KIND[self.request.type]
        pool = {"event": {e.id for e in self.events}, "person": people,
                "email": {m.id for m in self.emails}}[kind]
        bad = [t for t in self.request.target if t not in pool]
        if bad:
            raise ValueError(f"request.target {', '.join(bad)}: a {self.request.type} request "
                             f"targets planted {kind}s ({', '.join(sorted(pool)) or 'none'})")
        return self
