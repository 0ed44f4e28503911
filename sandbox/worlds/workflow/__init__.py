"""The workflow world: a support call run through a four-stage pipeline (retrieve, extract,
rules, crm_update), each stage graded against the truth, with its scripted reference agent.

- `world.py`: `WorkflowWorld` (registered as world `workflow`): the customer database, the
  stages as tools, the per-stage ground truth, and the scenario's options and task fields;
- `calls.py`: what a call is about and how its transcript is written from templates;
- `policy.py`: the business rules, as the text the agent reads and as the function both the
  world and the scripted agent apply, with the price list;
- `tasks.py`: generated tasks (`tasks: {generate: N}`), harder with each difficulty;
- `agent.py`: `ScriptedWorkflowAgent` (registered as agent `scripted:workflow`), a keyword
  pipeline that errs at chosen stages with chosen probabilities.

Importing this package registers both.
"""

from trialrun.sandbox.worlds.workflow.agent import (
    ScriptedWorkflowAgent,
    WorkflowAgentOptions,
    extract_call,
)
from trialrun.sandbox.worlds.workflow.calls import CallSpec
from trialrun.sandbox.worlds.workflow.policy import POLICY, Rules, crm_record, rule_outcome
from trialrun.sandbox.worlds.workflow.tasks import generate_tasks
from trialrun.sandbox.worlds.workflow.world import (
    STAGES,
    WorkflowOptions,
    WorkflowTask,
    WorkflowWorld,
)

__all__ = ["POLICY", "STAGES", "CallSpec", "Rules", "ScriptedWorkflowAgent",
           "WorkflowAgentOptions", "WorkflowOptions", "WorkflowTask", "WorkflowWorld",
           "crm_record", "extract_call", "generate_tasks", "rule_outcome"]
