"""The retail world: customer support over a seeded store database, graded against a written
policy, with its scripted reference agent.

- `world.py`: `RetailWorld` (registered as world `retail`): the store, its tools, the ground
  truth each decision is judged against, and the scenario's options and task fields;
- `policy.py`: the support policy, as the text the agent reads and as the function that gives
  the resolution it requires;
- `agent.py`: `ScriptedRetailAgent` (registered as agent `scripted:retail`), which follows the
  policy and errs at chosen nodes with chosen probabilities.

Importing this package registers both.
"""

from trialrun.sandbox.worlds.retail.agent import RetailAgentOptions, ScriptedRetailAgent
from trialrun.sandbox.worlds.retail.policy import POLICY
from trialrun.sandbox.worlds.retail.world import (
    CATALOG,
    RetailOptions,
    RetailTask,
    RetailWorld,
)

__all__ = ["CATALOG", "POLICY", "RetailAgentOptions", "RetailOptions", "RetailTask",
           "RetailWorld", "ScriptedRetailAgent"]
