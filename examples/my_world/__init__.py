"""The thermostat world of docs/writing-a-world.md, shaped like a built-in world folder:

- `world.py`: `ThermostatWorld` (world `thermostat`): the room, its tools, the owner who
  answers `ask_human`, and the ground truth each decision is judged against;
- `agent.py`: `ThermostatAgent` (agent `scripted:thermostat`), its scripted reference agent;
- `scenario.yaml`: a scenario that runs them, with a checkpoint before the irreversible lock;
- `run.py`: the same run from Python.

Importing this package registers both, as `trialrun.sandbox.worlds.<name>` does.
"""

from my_world.agent import ThermostatAgent, ThermostatAgentOptions
from my_world.world import ThermostatOptions, ThermostatTask, ThermostatWorld

__all__ = ["ThermostatAgent", "ThermostatAgentOptions", "ThermostatOptions", "ThermostatTask",
           "ThermostatWorld"]
