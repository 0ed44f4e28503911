"""An LLM agent behind any OpenAI-compatible chat-completions endpoint, with tool calling.

    agent:
      type: openai
      params:
        base_url: http://127.0.0.1:8000/v1   # else $OPENAI_BASE_URL, else api.openai.com
        model: gpt-4o-mini                   # else $OPENAI_MODEL
        api_key_env: MY_KEY                  # else $OPENAI_API_KEY (a key is never written
                                             # in a scenario: scenarios are stored with runs)
        temperature: 0
        prices: {input_per_1m: 0.15, output_per_1m: 0.6}
        node_map: {find_customer: verify_identity, refund: resolve}

What the model is offered: the world's tools (`ToolSpec.openai_schema()`), plus two function
tools of the harness, `ask_human(question)` (a human's help; `ask_human_tool: null` to not
offer it) and `finish(summary?)`. Conversation: the system prompt, then a user message with
the task's instruction and the first observation's text.

One model turn is one decision:
- a tool call → a `tool_call` decision at `node_map[tool]` (tools without an entry get an
  empty node, which the loop names by the scenario's `node_map`, else the tool's name; the
  first call of each such world tool warns, once per process: `UnmappedToolWarning`);
- `ask_human` → an `ask_human` decision at `node_map["ask_human"]`, else `ask_human`;
- `finish` → a `finish` decision at `node_map["finish"]`, else `finish`. Finishing is this
  explicit call, never implied by a reply without tool calls;
- text without a tool call → a `message` decision at `reply_node` ("reply"); what the world
  answers (`on_message`, then the next observation) comes back as a user message, or
  `no_reply_text` when it says nothing, and the model goes on.
- several tool calls in one turn: the first is this turn's decision, the others are queued
  and become the next decisions in order, with no model call between them (the model sees
  all their results together, one `tool` message per call id, before its next turn). Only
  the first carries the turn's `model_calls`, tokens and cost.

Decisions carry `tokens` (prompt + completion, from the response's `usage`), `cost` (from the
`prices` table), `confidence=None` and `model_calls` (the turn's `ModelCall`: replay key, the
messages added since the previous call, the response, latency, tokens, cost, attempts).

Feedback goes back as the `tool` message of the call: the tool's output (JSON), `Error: ...`
for a refused or failed call, the human's answer for `ask_human`, a note when a reviewer
denied the call (it did not run) or a human took over (what ran instead, and its result).

Malformed tool calls are the model's errors, graded by the loop at the call's node, and the
model is told in the tool message: an unknown tool goes to the loop as that `tool_call` (its
`validate_call` refuses it); arguments that break the schema go as sent (refused by
`validate_call` or by the world's strict `@tool` validation); arguments that are not a JSON
object go with `args={}`, `args_error` saying why, and `text` set to `raw: <the string as
sent>` (a tool call's `text` is otherwise empty; the model's words with a call are in the
response stored in `model_calls`); `validate_call` refuses every call with an `args_error`.

Endpoint faults are retried by `ModelClient` and raise `AgentError` when they persist: an
infrastructure error of the run, never the agent's failure. The API key is used for the
Authorization header only: it is never put in a decision, a model call, an error or a log.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import deque
from typing import Any

from pydantic import Field, field_validator

from trialrun.agents.base import (
    DENIED,
    Agent,
    AgentContext,
    AgentError,
    Feedback,
    NodeMapOptions,
    result_text,
)
from trialrun.agents.model_client import Conversation, ModelClient, Prices
from trialrun.registry import register
from trialrun.trajectory import Decision, ModelCall, Observation

__all__ = ["OpenAIAgent", "OpenAIOptions", "UnmappedToolWarning"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DENIED_MESSAGE = "(A human reviewer did not approve your last message: it was not sent.)"


class UnmappedToolWarning(UserWarning):
    """A world tool with no `node_map` entry in the openai agent's options."""


_warned: set[str] = set()


class OpenAIOptions(NodeMapOptions):
    base_url: str | None = Field(None, description="chat-completions base URL (…/v1); "
                                 "default $OPENAI_BASE_URL, else https://api.openai.com/v1")
    model: str | None = Field(None, description="model name; default $OPENAI_MODEL")
    api_key_env: str | None = Field(None, description="environment variable holding the key "
                                    "(default OPENAI_API_KEY)")
    system_prompt: str | None = Field(None, description="default: a short generic prompt")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    parallel_tool_calls: bool | None = Field(None, description="sent only when set")
    timeout_s: float = Field(60.0, gt=0, description="per HTTP attempt")
    max_attempts: int = Field(5, ge=1, description="HTTP attempts per model call")
    backoff_s: float = Field(0.5, ge=0, description="first retry delay; doubles")
    max_backoff_s: float = Field(8.0, ge=0)
    max_retry_after_s: float = Field(60.0, ge=0, description="cap on a 429's Retry-After")
    concurrency: int = Field(8, ge=1, description="requests in flight per endpoint")
    requests_per_second: float | None = Field(None, gt=0, description="per endpoint")
    prices: Prices = Field(default_factory=Prices)
    ask_human_tool: str | None = Field("ask_human", description="null: not offered")
    finish_tool: str = "finish"
    no_reply_text: str = Field(
        "(No reply. Go on with the task, and call finish when it is complete.)",
        description="user message after a reply the world does not answer")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return v

    def sampling(self) -> dict[str, Any]:
        """What goes into the request besides model, messages and tools (and the replay key)."""
        params: dict[str, Any] = {"tool_choice": "auto"}
        for k in ("temperature", "top_p", "max_tokens", "seed", "parallel_tool_calls"):
            v = getattr(self, k)
            if v is not None:
                params[k] = v
        return params


def _system_prompt(ask: str | None, finish: str) -> str:
    ask_line = f" If you need a human's help or a decision you cannot make, call {ask}." \
        if ask else ""
    return ("You are an agent working in an environment through the function tools provided. "
            "Use them to complete the task, one call at a time, and read each result before "
            f"the next call.{ask_line} When the task is complete, call {finish}.")


@register("agent", "openai")
class OpenAIAgent(Agent):
    """See the module docstring."""

    Options = OpenAIOptions
    options: OpenAIOptions

    def __init__(self, options: OpenAIOptions | dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.client: ModelClient | None = None

    # --- set-up ------------------------------------------------------------------------
    def _api_key(self) -> str | None:
        return os.environ.get(self.options.api_key_env or "OPENAI_API_KEY") or None

    async def start(self, ctx: AgentContext, first: Observation) -> None:
        await super().start(ctx, first)
        o = self.options
        model = o.model or os.environ.get("OPENAI_MODEL")
        if not model:
            raise AgentError("openai agent: no model (set agent.params.model or OPENAI_MODEL)")
        base_url = o.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        world_tools = {t.name for t in ctx.tools}
        ours = [n for n in (o.ask_human_tool, o.finish_tool) if n]
        clash = sorted(world_tools.intersection(ours))
        if clash:
            raise AgentError(f"openai agent: the world has a tool named {clash[0]!r}; rename "
                             "the agent's own (ask_human_tool / finish_tool options)")
        self.world_tools = world_tools
        tools = [t.openai_schema() for t in ctx.tools]
        if o.ask_human_tool:
            tools.append(_function(o.ask_human_tool, "Ask a human supervisor for help or a "
                                   "decision; their answer comes back as the result.",
                                   {"question": {"type": "string",
                                                 "description": "what you need to know"}},
                                   ["question"]))
        tools.append(_function(o.finish_tool, "End the task: call this once it is complete.",
                               {"summary": {"type": "string",
                                            "description": "what was done, in a sentence"}},
                               []))
        self.client = ModelClient(
            base_url, model, api_key=self._api_key(), timeout_s=o.timeout_s,
            max_attempts=o.max_attempts, backoff_s=o.backoff_s, max_backoff_s=o.max_backoff_s,
            max_retry_after_s=o.max_retry_after_s, concurrency=o.concurrency,
            requests_per_second=o.requests_per_second, prices=o.prices, jitter_seed=ctx.seed)
        self.conv = Conversation(model, tools, o.sampling())
        self.conv.add({"role": "system", "content": o.system_prompt or _system_prompt(
            o.ask_human_tool, o.finish_tool)})
        text = ctx.instruction
        if first.text and first.text != text:
            text = f"{text}\n\n{first.text}" if text else first.text
        self.conv.add({"role": "user", "content": text})
        self.queue: deque[tuple[Decision, str, str | None]] = deque()
        self.user_notes: list[str] = []  # user messages to send after the tool messages
        self.call_id: str | None = None  # the tool call behind the last decision
        self.error: str | None = None  # why the last call's arguments could not be read
        self.last: Decision | None = None
        self.first_obs = True

    # --- decide ------------------------------------------------------------------------
    async def decide(self, obs: Observation) -> Decision:
        if self.first_obs:  # the first observation is already in the conversation
            self.first_obs = False
        elif obs.text:
            self.user_notes.append(obs.text)
        if not self.queue:
            await self._turn()
        decision, self.call_id, self.error = self.queue.popleft()
        self.last = decision
        return decision

    async def adopt(self, decision: Decision, obs: Observation) -> None:
        """The recorded turn goes into the conversation as if the model had said it: a fork
        makes no model call for its prefix, whatever model or prompt goes on from there."""
        if self.first_obs:
            self.first_obs = False
        elif obs.text:
            self.user_notes.append(obs.text)
        if not self.queue:
            if not decision.model_calls:
                raise AgentError("openai agent: the recorded decision carries no model call "
                                 "to adopt (was it made by another kind of agent?)")
            self._notes_in()
            call = decision.model_calls[-1]
            self._take(call.response, call)
        _, self.call_id, self.error = self.queue.popleft()
        self.last = decision

    def _notes_in(self) -> None:
        for note in self.user_notes:
            self.conv.add({"role": "user", "content": note})
        self.user_notes.clear()

    async def _turn(self) -> None:
        """One model call; its decisions go to the queue."""
        self._notes_in()
        assert self.client is not None
        try:
            response, call = await self.client.complete(self.conv.request())
        except AgentError:
            await self.client.aclose()  # the loop will not call close() after this
            raise
        self._take(response, call)

    def _take(self, response: dict[str, Any], call: ModelCall) -> None:
        """The model's turn into the conversation, its decisions into the queue."""
        msg = response["choices"][0]["message"]
        content = msg.get("content")
        content = content if isinstance(content, str) else ""
        raw_calls = msg.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            raw_calls = []
        calls = [_normal_call(c, f"call_{call.index}_{i}") for i, c in enumerate(raw_calls)]
        assistant: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            assistant["tool_calls"] = calls
        self.conv.add(assistant)
        usage = {"tokens": call.tokens_in + call.tokens_out, "cost": call.cost,
                 "model_calls": [call]}
        if not calls:
            self.queue.append((Decision(kind="message", node=self.options.node_of("message"),
                                        text=content, **usage), None, None))
            return
        for i, c in enumerate(calls):
            decision, error = self._decision(c["function"]["name"], c["function"]["arguments"],
                                             usage if i == 0 else {})
            self.queue.append((decision, c["id"], error))

    def _decision(self, name: str, raw: str, usage: dict[str, Any]
                  ) -> tuple[Decision, str | None]:
        o = self.options
        args, error = _parse_args(raw)
        node = o.node_map.get(name)
        if name == o.finish_tool:
            summary = args.get("summary")
            return Decision(kind="finish", node=node or o.node_of("finish"),
                            text=summary if isinstance(summary, str) else None, **usage), None
        if o.ask_human_tool and name == o.ask_human_tool:
            q = args.get("question")
            text = q if isinstance(q, str) else (raw if error else json.dumps(args))
            return Decision(kind="ask_human", node=node or o.node_of("ask_human"), text=text,
                            **usage), None
        if node is None and name in self.world_tools and name not in _warned:
            _warned.add(name)
            warnings.warn(f"openai agent: tool {name!r} has no node_map entry; its decisions "
                          f"are named by the scenario's node_map, else {name!r}",
                          UnmappedToolWarning, stacklevel=2)
        if error is not None:
            return Decision(kind="tool_call", node=node or "", tool=name, args={},
                            args_error=f"unreadable arguments: {error}", text=f"raw: {raw[:2000]}",
                            **usage), error
        return Decision(kind="tool_call", node=node or "", tool=name, args=args,
                        **usage), None

    # --- feedback ----------------------------------------------------------------------
    async def feedback(self, fb: Feedback) -> None:
        mine = self.last
        if self.call_id is None:  # a reply without a tool call
            if fb.denied:
                self.user_notes.append(DENIED_MESSAGE)
                return
            said = fb.result.output if fb.result is not None and fb.result.ok else None
            self.user_notes.append(str(said) if said else self.options.no_reply_text)
            return
        if fb.denied:
            content = DENIED
        elif self.error is not None:
            content = f"Error: the arguments are not a JSON object ({self.error})."
            if fb.result is not None and fb.result.ok:  # the tool needs none: it ran with {}
                content += f" The tool ran with no arguments: {result_text(fb.result)}"
            else:
                content += " Nothing ran; call the tool again with a JSON object."
        else:
            ran = fb.executed or (fb.decision if mine is not None and _differs(fb.decision, mine)
                                  else None)
            if fb.decision.kind == "ask_human" and ran is None:
                content = fb.human_answer or (str(fb.result.output) if fb.result else "")
            else:
                content = result_text(fb.result)
            if ran is not None:
                content = f"A human took over this step and did {ran.label()} instead. " \
                          f"Result: {content}"
        self.conv.add({"role": "tool", "tool_call_id": self.call_id, "content": content})

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


# --- helpers -------------------------------------------------------------------------------
def _function(name: str, description: str, props: dict[str, Any], required: list[str]
              ) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": props, "required": required,
                       "additionalProperties": False}}}


def _normal_call(c: Any, fallback_id: str) -> dict[str, Any]:
    """A tool call as it goes back into the conversation: an id (made up when the server
    sent none), a name, and the arguments as a string (some servers send an object)."""
    c = c if isinstance(c, dict) else {}
    fn = c.get("function") if isinstance(c.get("function"), dict) else {}
    args = fn.get("arguments")
    if args is None:
        args = ""
    elif not isinstance(args, str):
        args = json.dumps(args, ensure_ascii=False)
    cid = c.get("id")
    return {"id": cid if isinstance(cid, str) and cid else fallback_id, "type": "function",
            "function": {"name": str(fn.get("name") or ""), "arguments": args}}


def _parse_args(raw: str) -> tuple[dict[str, Any], str | None]:
    """The arguments as a dict, or ({}, why they are not a JSON object)."""
    if not raw.strip():
        return {}, None  # no arguments at all
    try:
        args = json.loads(raw)
    except json.JSONDecodeError as e:
        return {}, f"not valid JSON: {e.msg} at character {e.pos}"
    if not isinstance(args, dict):
        return {}, f"a JSON {type(args).__name__}, not an object"
    return args, None


def _differs(a: Decision, b: Decision) -> bool:
    return (a.kind, a.tool, a.args, a.text) != (b.kind, b.tool, b.args, b.text)

