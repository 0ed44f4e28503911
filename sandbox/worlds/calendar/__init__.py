"""The calendar world: an assistant manages one person's calendar and inbox, where requests
can be ambiguous and actions irreversible, with its scripted reference agent.

- `world.py`: `CalendarWorld` (registered as world `calendar`): set-up, tools, the owner's
  side of the dialogue (a simulated user, `sandbox/worlds/users.py`), state;
- `schema.py`: the scenario's options (`CalendarOptions`) and task fields (`CalendarTask`);
- `organisation.py`: the seeded people, calendar and inbox, and the search every tool shares;
- `effects.py`: what each action changes, and the normal form outcomes are compared in;
- `policy.py`: ground truth: what a request calls for, verdicts, reference decisions, outcome;
- `tasks.py`: generated task variants, and the owner's words for a request;
- `times.py`: times of the simulated week, as written and as spoken;
- `agent.py`: `ScriptedCalendarAgent` (registered as agent `scripted:calendar`): search,
  clarify only when ambiguous, act, tell the owner; errs at chosen nodes.

Importing this package registers both.
"""

from trialrun.sandbox.worlds.calendar.agent import CalendarAgentOptions, ScriptedCalendarAgent
from trialrun.sandbox.worlds.calendar.organisation import SEARCH_TOOL, Organisation
from trialrun.sandbox.worlds.calendar.policy import Policy
from trialrun.sandbox.worlds.calendar.schema import (
    MENTION_KIND,
    CalendarOptions,
    CalendarRequest,
    CalendarTask,
)
from trialrun.sandbox.worlds.calendar.tasks import describe_request
from trialrun.sandbox.worlds.calendar.times import shift, spoken, to_iso
from trialrun.sandbox.worlds.calendar.world import CalendarWorld

__all__ = ["MENTION_KIND", "SEARCH_TOOL", "CalendarAgentOptions", "CalendarOptions",
           "CalendarRequest", "CalendarTask", "CalendarWorld", "Organisation", "Policy",
           "ScriptedCalendarAgent", "describe_request", "shift", "spoken", "to_iso"]
