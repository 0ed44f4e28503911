"""The example world of docs/writing-a-world.md: a thermostat, and an agent that drives it."""
