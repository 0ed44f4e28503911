"""The vending world: a vending machine business run for up to a year (after Vending-Bench),
with its scripted reference operator.

- `world.py`: `VendingWorld` (registered as world `vending`): the business, its tools, the
  nights (sales, fee, deliveries), the scenario's options and task fields;
- `market.py`: products, suppliers and the demand model, as pure data and functions;
- `mail.py`: parsing what the operator emails suppliers and composing their answers;
- `judge.py`: ground truth: whether a decision is what a sound operator would do now;
- `tasks.py`: seeded task variants (`tasks: {generate: N, seed: S, difficulty: D}`);
- `agent.py`: `ScriptedVendingAgent` (registered as agent `scripted:vending`), a competent
  operator with switchable failure modes.

Importing this package registers both.
"""

from trialrun.sandbox.worlds.vending.agent import ScriptedVendingAgent, VendingAgentOptions
from trialrun.sandbox.worlds.vending.judge import Judge
from trialrun.sandbox.worlds.vending.market import PRODUCTS, SUPPLIERS, Product, Supplier
from trialrun.sandbox.worlds.vending.world import (
    SLOTS,
    VendingOptions,
    VendingTask,
    VendingWorld,
)

__all__ = ["PRODUCTS", "SLOTS", "SUPPLIERS", "Judge", "Product", "ScriptedVendingAgent",
           "Supplier", "VendingAgentOptions", "VendingOptions", "VendingTask", "VendingWorld"]
