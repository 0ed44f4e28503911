"""`trialrun import`: τ-bench / τ²-bench results, Inspect AI logs and OpenTelemetry GenAI spans
become runs the analysis reads like its own. Every file here is written by the test in the
format's own layout; nothing is downloaded."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import zipfile
from math import comb

import pytest

from trialrun.analysis.data import load_run
from trialrun.analysis.summary import summarize
from trialrun.importers import ImportFormatError, import_files

REFUND = "return_delivered_order_items"


def _tool_msg(call_id: str, name: str, args: dict) -> list[dict]:
    return [{"role": "assistant", "content": None, "tool_calls": [{
        "id": call_id, "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)}}]},
        {"role": "tool", "tool_call_id": call_id, "name": name, "content": "{}"}]


def tau_bench_file(path, tasks: int = 50, trials: int = 4, seed: int = 7) -> dict:
    """A τ-bench result file (run.py's EnvRunResult list): each task has its own chance of
    success; a failed trial refunds the wrong item (a write that is not a gold action).
    Returns the truth the file was made from."""
    rng = random.Random(seed)
    rows, truth = [], {"c": {}, "wrong_writes": 0, "writes": 0}
    for t in range(tasks):
        p = rng.choice([0.0, 0.3, 0.6, 0.9, 1.0])
        gold = [{"name": "find_user_id_by_email", "kwargs": {"email": f"u{t}@x.com"}},
                {"name": "get_order_details", "kwargs": {"order_id": f"#W{t}"}},
                {"name": REFUND, "kwargs": {"order_id": f"#W{t}", "item_ids": ["1"],
                                            "payment_method_id": "pm"}}]
        for k in range(trials):
            ok = rng.random() < p
            item = ["1"] if ok else ["2"]
            traj = [{"role": "system", "content": "policy"},
                    {"role": "user", "content": "I want a refund"},
                    *_tool_msg("c1", "find_user_id_by_email", {"email": f"u{t}@x.com"}),
                    *_tool_msg("c2", "get_order_details", {"order_id": f"#W{t}"}),
                    *_tool_msg("c3", "get_product_details", {"product_id": "9"}),
                    *_tool_msg("c4", REFUND, {"order_id": f"#W{t}", "item_ids": item,
                                              "payment_method_id": "pm"}),
                    {"role": "assistant", "content": "Your refund is on its way."},
                    {"role": "user", "content": "###STOP###"}]
            truth["writes"] += 1
            truth["wrong_writes"] += not ok
            rows.append({"task_id": t, "trial": k, "reward": 1.0 if ok else 0.0,
                         "info": {"task": {"user_id": f"u{t}", "instruction": "...",
                                           "actions": gold, "outputs": []},
                                  "source": "user", "user_cost": 0.01,
                                  "reward_info": {"reward": 1.0 if ok else 0.0,
                                                  "info": {"r_actions": ok,
                                                           "gt_data_hash": "h"},
                                                  "actions": gold[2:]}},
                         "traj": traj})
    rng.shuffle(rows)  # run.py writes them in completion order
    path.write_text(json.dumps(rows, indent=2))
    return truth


def test_a_tau_bench_file_of_50_tasks_by_4_trials_reproduces_pass_hat_k_by_hand(store, tmp_path):
    path = tmp_path / "tool-calling-gpt-4o-0.0_range_0-50.json"
    truth = tau_bench_file(path)
    run_id, n = import_files(store, "tau-bench", [path])
    assert n == 200
    # By hand, from the same file: c successes of 4 per task, pass^k = mean C(c,k)/C(4,k).
    rows = json.loads(path.read_text())
    c: dict[int, int] = {}
    for r in rows:
        c[r["task_id"]] = c.get(r["task_id"], 0) + (abs(r["reward"] - 1) < 1e-6)
    hand = {k: sum(comb(x, k) / comb(4, k) for x in c.values()) / 50 for k in (1, 2, 3, 4)}
    d = load_run(store, run_id)
    s = summarize(d)
    got = {t.k: t.pass_hat_k for t in s.trials}
    assert set(got) == {1, 2, 3, 4}
    for k in (1, 2, 3, 4):
        assert got[k] == pytest.approx(hand[k], abs=1e-12)
        assert s.trials[k - 1].tasks == 50
    # worst-of-k (= pass^k on pass/fail outcomes) and pass^4's CI over tasks.
    t = s.reliability.trials
    assert t.k == 4 and t.worst_of_k == pytest.approx(hand[4])
    assert t.pass_hat_k.lo <= hand[4] <= t.pass_hat_k.hi
    # Node-level grades against the gold actions: the refund is graded, reads are not.
    nodes = {x.node: x for x in s.nodes}
    assert set(nodes) == {"find_user_id_by_email", "get_order_details", REFUND}
    assert nodes[REFUND].marginal.n == truth["writes"]
    assert nodes[REFUND].marginal.n - nodes[REFUND].marginal.k == truth["wrong_writes"]
    # First-error attribution: every failure first went wrong at the refund (step 3).
    assert s.first_error_nodes == {REFUND: truth["wrong_writes"]}
    assert s.failed_without_graded_error == 0 and s.predicted_success == pytest.approx(
        s.success.rate)
    ep = store.load_episode(next(e.id for e in store.episodes(run_id) if not e.success))
    assert ep.first_error.index == 3 and "not a gold action" in ep.first_error.grades[0].reason
    assert "gold action(s) never taken" in ep.outcome_grades[0].reason


def test_tau_bench_errors_are_not_scored_and_react_actions_are_read(store, tmp_path):
    path = tmp_path / "r.json"
    react = {"role": "assistant", "content": 'Thought: x\nAction:\n{"name": "cancel_pending_'
             'order", "arguments": {"order_id": "#W1", "reason": "no longer needed"}}'}
    path.write_text(json.dumps([
        {"task_id": 1, "trial": 0, "reward": 1.0, "info": {"task": {"actions": [
            {"name": "cancel_pending_order",
             "kwargs": {"order_id": "#W1", "reason": "no longer needed"}}]}},
         "traj": [react, {"role": "user", "content": "API output: ok"}]},
        {"task_id": 1, "trial": 1, "reward": 0.0, "info": {"error": "RateLimitError: 429",
                                                           "traceback": "..."}, "traj": []},
        {"task_id": 2, "trial": 0, "reward": 0.0, "info": {"task": {"actions": [
            {"name": "transfer_to_human_agents", "kwargs": {"summary": "s"}}]}},
         "traj": _tool_msg("a", "transfer_to_human_agents", {"summary": "s"})}]))
    run_id, _ = import_files(store, "tau-bench", [path])
    s = summarize(load_run(store, run_id))
    assert s.episodes == 3 and s.errors == 1 and s.success.n == 2
    assert {n.node for n in s.nodes} == {"cancel_pending_order", "transfer_to_human_agents"}
    assert s.escalation.asks == 1 and s.escalation.asks_needed == 1


def tau2_file(path) -> None:
    """A τ²-bench Results file: tasks with gold actions (compare_args), simulations with
    messages, action checks and termination reasons."""
    def sim(task, trial, reward, reason, amount, seed):
        return {"id": f"s{task}{trial}", "task_id": task, "trial": trial, "seed": seed,
                "start_time": "t", "end_time": "t", "duration": 12.5,
                "termination_reason": reason, "agent_cost": 0.02,
                "reward_info": {"reward": reward, "action_checks": [
                    {"action": {"action_id": "a", "name": "refund", "arguments": {}},
                     "action_match": reward == 1, "action_reward": reward,
                     "tool_type": "write"}]},
                "messages": [
                    {"role": "user", "content": "refund please", "turn_idx": 0},
                    {"role": "assistant", "content": None, "turn_idx": 1, "cost": 0.01,
                     "usage": {"prompt_tokens": 100, "completion_tokens": 20},
                     "tool_calls": [{"id": "t1", "name": "refund", "requestor": "assistant",
                                     "arguments": {"order": "o1", "amount": amount,
                                                   "note": f"n{trial}"}}]},
                    {"role": "tool", "id": "t1", "content": "done", "requestor": "assistant",
                     "error": False, "turn_idx": 2},
                    {"role": "assistant", "content": "Refunded.", "turn_idx": 3}]}
    data = {"timestamp": "t", "info": {
        "git_commit": "x", "num_trials": 2, "max_steps": 30, "max_errors": 10,
        "user_info": {"implementation": "user_simulator", "llm": "gpt-4.1"},
        "agent_info": {"implementation": "llm_agent", "llm": "small-model"},
        "environment_info": {"domain_name": "retail", "policy": "..."}},
        "tasks": [{"id": "7", "evaluation_criteria": {"actions": [
            {"action_id": "a", "requestor": "assistant", "name": "refund",
             "arguments": {"order": "o1", "amount": 10, "note": "anything"},
             "compare_args": ["order", "amount"]}]}}],
        "simulations": [sim("7", 0, 1.0, "user_stop", 10, 300),
                        sim("7", 1, 0.0, "user_stop", 12, 301),
                        sim("7", 2, 0.0, "infrastructure_error", 10, 302),
                        sim("7", 3, 1.0, "max_steps", 10, 303)]}
    path.write_text(json.dumps(data))


def test_tau2_bench_results(store, tmp_path):
    path = tmp_path / "tau2.json"
    tau2_file(path)
    run_id, n = import_files(store, "tau-bench", [path])
    eps = {e.trial: e for e in store.episodes(run_id)}
    assert n == 4 and {e.scenario for e in eps.values()} == {"tau2-bench/retail"}
    assert eps[0].success is True and eps[1].success is False
    assert eps[2].end_reason == "error" and eps[2].success is None
    assert eps[3].end_reason == "truncated" and eps[3].success is False  # never a success
    assert eps[0].agent == "small-model" and eps[0].cost == pytest.approx(0.02)
    assert eps[0].tokens == 120 and eps[0].wall_ms == pytest.approx(12500)
    # compare_args: the note may differ, the amount may not.
    assert eps[0].first_error_node is None
    assert eps[1].first_error_node == "refund" and eps[1].first_error_step == 0
    assert {e.seed for e in eps.values()} == {0}  # trials of a task share one seed


def inspect_log(tmp_path) -> dict:
    samples = []
    for sid, values in (("q1", ["C", "C"]), ("q2", ["C", "I"]), ("q3", ["I", "P"])):
        for epoch, v in enumerate(values, start=1):
            samples.append({
                "id": sid, "epoch": epoch, "input": "question", "target": "answer",
                "messages": [
                    {"role": "user", "content": "question"},
                    {"role": "assistant", "content": "",
                     "tool_calls": [{"id": "c1", "function": "bash",
                                     "arguments": {"cmd": "ls"}}]},
                    {"role": "tool", "tool_call_id": "c1", "function": "bash",
                     "content": [{"type": "text", "text": "a.txt"}]},
                    {"role": "assistant", "content": "answer"}],
                "scores": {"match": {"value": v, "answer": "answer", "explanation": "e"}},
                "model_usage": {"openai/small": {"input_tokens": 10, "output_tokens": 5,
                                                 "total_tokens": 15}},
                "total_time": 2.0})
    samples.append({"id": "q4", "epoch": 1, "input": "x", "target": "y", "messages": [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c9", "function": "python", "arguments": {},
             "parse_error": "Expecting value: line 1 column 1"}]}],
        "scores": {"match": {"value": "I"}}})
    samples.append({"id": "q5", "epoch": 1, "input": "x", "target": "y", "messages": [],
                    "error": {"message": "sandbox failed to start", "traceback": "..."}})
    samples.append({"id": "q6", "epoch": 1, "input": "x", "target": "y", "messages": [],
                    "scores": {"match": {"value": "C"}},
                    "limit": {"type": "message", "limit": 10}})
    return {"version": 2, "status": "success",
            "eval": {"task": "security_guide", "model": "openai/small", "created": "t",
                     "dataset": {"name": "d"}, "config": {}},
            "results": {"total_samples": 6, "scores": [{"name": "match", "scorer": "match"}]},
            "samples": samples}


def test_inspect_logs_json_and_eval_zip(store, tmp_path):
    log = inspect_log(tmp_path)
    path = tmp_path / "log.json"
    path.write_text(json.dumps(log))
    run_id, n = import_files(store, "inspect", [path])
    s = summarize(load_run(store, run_id))
    eps = {(e.task, e.trial): e for e in store.episodes(run_id)}
    assert n == 9 and s.errors == 1
    assert eps[("q1", 0)].success and not eps[("q3", 1)].success  # P (0.5) is no success
    assert eps[("q6", 0)].end_reason == "truncated" and not eps[("q6", 0)].success
    assert eps[("q4", 0)].first_error_node == "python"  # the model's unparsable arguments
    # pass^2 by hand: q1 2/2, q2 1/2, q3 0/2 → (1 + 0 + 0) / 3.
    assert next(t for t in s.trials if t.k == 2).pass_hat_k == pytest.approx(1 / 3)
    # The .eval zip: header.json and samples/*.json.
    zpath = tmp_path / "log.eval"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("header.json", json.dumps({k: v for k, v in log.items() if k != "samples"}))
        for smp in log["samples"]:
            z.writestr(f"samples/{smp['id']}_epoch_{smp['epoch']}.json", json.dumps(smp))
    run2, n2 = import_files(store, "inspect", [zpath], scenario="inspect/zip")
    assert n2 == 9
    assert summarize(load_run(store, run2)).success.rate == s.success.rate


def _attr(key, value):
    if isinstance(value, bool):
        v = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}
    else:
        v = {"stringValue": value if isinstance(value, str) else json.dumps(value)}
    return {"key": key, "value": v}


def otlp_trace(trace: str, task: str, ok_refund: bool, eval_label: str | None,
               root_error: bool) -> dict:
    t0 = 1_700_000_000_000_000_000
    root = {"traceId": trace, "spanId": "r" + trace[:15], "name": "invoke_agent support",
            "startTimeUnixNano": str(t0), "endTimeUnixNano": str(t0 + 3_000_000_000),
            "attributes": [_attr("gen_ai.operation.name", "invoke_agent"),
                           _attr("gen_ai.agent.name", "support-bot"),
                           _attr("trialrun.task", task)],
            "status": {"code": 2, "message": "customer left"} if root_error else {"code": 1}}
    chat = {"traceId": trace, "spanId": "c" + trace[:15], "parentSpanId": root["spanId"],
            "name": "chat small", "startTimeUnixNano": str(t0 + 1),
            "endTimeUnixNano": str(t0 + 2),
            "attributes": [_attr("gen_ai.operation.name", "chat"),
                           _attr("gen_ai.usage.input_tokens", 50),
                           _attr("gen_ai.usage.output_tokens", 7)]}
    lookup = {"traceId": trace, "spanId": "l" + trace[:15], "parentSpanId": root["spanId"],
              "name": "execute_tool get_order", "startTimeUnixNano": str(t0 + 10),
              "endTimeUnixNano": str(t0 + 20),
              "attributes": [_attr("gen_ai.operation.name", "execute_tool"),
                             _attr("gen_ai.tool.name", "get_order"),
                             _attr("gen_ai.tool.call.arguments", {"id": "o1"}),
                             _attr("gen_ai.tool.call.result", "{...}")]}
    refund = {"traceId": trace, "spanId": "f" + trace[:15], "parentSpanId": root["spanId"],
              "name": "execute_tool refund", "startTimeUnixNano": str(t0 + 30),
              "endTimeUnixNano": str(t0 + 40),
              "attributes": [_attr("gen_ai.operation.name", "execute_tool"),
                             _attr("gen_ai.tool.name", "refund"),
                             _attr("gen_ai.tool.call.arguments", {"id": "o1"})],
              "status": {"code": 1} if ok_refund else {"code": "STATUS_CODE_ERROR",
                                                        "message": "amount over limit"}}
    if eval_label is not None:
        root["events"] = [{"name": "gen_ai.evaluation.result", "timeUnixNano": str(t0),
                           "attributes": [_attr("gen_ai.evaluation.name", "resolved"),
                                          _attr("gen_ai.evaluation.score.label",
                                                eval_label)]}]
    return {"resourceSpans": [{"resource": {"attributes": [
        _attr("service.name", "support-prod")]}, "scopeSpans": [
        {"scope": {"name": "app"}, "spans": [root, chat, lookup, refund]}]}]}


def test_otel_genai_spans(store, tmp_path):
    path = tmp_path / "traces.jsonl"
    traces = [otlp_trace("a" * 32, "refund-1", True, "pass", False),
              otlp_trace("b" * 32, "refund-1", False, None, True),
              otlp_trace("c" * 32, "refund-1", True, "fail", False),
              otlp_trace("d" * 32, "refund-2", False, None, False)]
    path.write_text("\n".join(json.dumps(t) for t in traces))
    run_id, n = import_files(store, "otel", [path])
    eps = sorted(store.episodes(run_id), key=lambda e: (e.task, e.trial))
    assert n == 4 and {e.scenario for e in eps} == {"support-prod"}
    assert [(e.task, e.trial) for e in eps] == [("refund-1", 0), ("refund-1", 1),
                                                ("refund-1", 2), ("refund-2", 0)]
    assert [e.success for e in eps] == [True, False, False, True]
    assert eps[1].first_error_node == "refund" and eps[0].first_error_node is None
    assert eps[0].agent == "support-bot" and eps[0].tokens == 57
    assert eps[0].wall_ms == pytest.approx(3000)
    s = summarize(load_run(store, run_id))
    refund = next(x for x in s.nodes if x.node == "refund")
    assert (refund.marginal.k, refund.marginal.n) == (2, 4)
    # The SDK console exporter's form of one span.
    console = tmp_path / "console.json"
    console.write_text(json.dumps({
        "name": "execute_tool refund", "context": {"trace_id": "0x" + "e" * 32,
                                                   "span_id": "0x" + "1" * 16},
        "parent_id": None, "start_time": "2026-01-01T00:00:00.000000Z",
        "end_time": "2026-01-01T00:00:01.500000Z", "status": {"status_code": "ERROR",
                                                             "description": "denied"},
        "attributes": {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "refund",
                       "gen_ai.tool.call.arguments": "{\"id\": \"o1\"}"},
        "events": [], "resource": {"attributes": {"service.name": "svc"}}}, indent=4)
        + "\n" + json.dumps({
            "name": "invoke_agent x", "context": {"trace_id": "0x" + "f" * 32,
                                                  "span_id": "0x" + "2" * 16},
            "parent_id": None, "start_time": "2026-01-01T00:00:00Z",
            "end_time": "2026-01-01T00:00:02Z", "status": {"status_code": "UNSET"},
            "attributes": {}, "events": [], "resource": {"attributes": {}}}, indent=4))
    run2, n2 = import_files(store, "otel", [console])
    got = {e.scenario: e for e in store.episodes(run2)}
    assert n2 == 2 and got["svc"].success is False and got["svc"].first_error_node == "refund"
    assert got["svc"].wall_ms == pytest.approx(1500) and got["otel"].success is True


@pytest.mark.parametrize("fmt, content, says", [
    ("tau-bench", '[{"task_id": 1, "trial": 0,\n "reward": }]', "r.json:2:12: not valid JSON"),
    ("tau-bench", '[{"task_id": 1, "trial": 0, "reward": 1, "info": {}, "traj": []},\n'
                  ' {"task_id": 2, "trial": 0, "info": {}}]', "r.json:[1].reward: Field required"),
    ("tau-bench", '{"tasks": []}', "expected a τ-bench result file"),
    ("tau-bench", '{"simulations": [{"task_id": 1, "termination_reason": "bored"}]}',
     "r.json:simulations[0].termination_reason: unknown reason 'bored'"),
    ("inspect", '{"eval": {"model": "m"}, "samples": []}', "r.json:eval.task: Field required"),
    ("inspect", '{"eval": {"task": "t"}, "samples": [{"id": 1, "scores": {"s": '
                '{"value": [1, 2]}}}]}', "r.json:samples[0].scores: no score that reads"),
    ("otel", '{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"}]}]}]}',
     "r.json:resourceSpans[0].scopeSpans[0].spans[0]: expected a span with traceId"),
    ("otel", '{"spans": []}', "expected OTLP/JSON"),
    ("otel", "", "r.json: empty file: expected JSON"),
])
def test_a_malformed_file_is_one_clear_line(store, tmp_path, fmt, content, says):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(ImportFormatError) as e:
        import_files(store, fmt, [path])
    assert says in str(e.value), str(e.value)
    assert "\n" not in str(e.value) and not store.runs()  # nothing stored


def test_the_import_command_prints_the_report_and_writes_json_and_html(tmp_path):
    path = tmp_path / "results.json"
    tau_bench_file(path, tasks=10, trials=3)
    db = f"sqlite:///{tmp_path / 'r.db'}"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "trialrun.cli",
                               *args], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path)

    out = cli("import", "tau-bench", str(path), "--db", db, "--json", "r.json", "--html",
              "r.html", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "pass^k" in out.stdout and REFUND in out.stdout and "imported 30 episode(s)" \
        in out.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["episodes"] == 30 and [t["k"] for t in report["trials"]] == [1, 2, 3]
    assert "<script" not in (tmp_path / "r.html").read_text()
    bad = cli("import", "tau-bnch", str(path), "--db", db)
    assert bad.returncode == 2 and "did you mean 'tau-bench'" in bad.stderr
    missing = cli("import", "otel", str(tmp_path / "nope.json"), "--db", db)
    assert missing.returncode == 2 and "nope.json: no such file" in missing.stderr
    assert "Traceback" not in bad.stderr + missing.stderr
    # Two imports of the same tasks pair up in `diff` (scenario, task, trial).
    path2 = tmp_path / "results2.json"
    tau_bench_file(path2, tasks=10, trials=3, seed=8)
    out2 = cli("import", "tau-bench", str(path2), "--db", db, "--json", "r2.json",
               "--no-progress")
    assert out2.returncode == 0, out2.stderr
    a, b = report["run_id"], json.loads((tmp_path / "r2.json").read_text())["run_id"]
    diff = cli("diff", a, b, "--db", db, "--json", "d.json")
    assert diff.returncode == 0, diff.stderr
    assert json.loads((tmp_path / "d.json").read_text())["pairs"] == 30


def test_an_imported_run_cannot_be_replayed_attributed_or_forked_and_says_why(store, tmp_path):
    """Nothing re-creates an imported run's environment: each command that re-runs episodes
    refuses in one line (exit 2) instead of a KeyError traceback."""
    path = tmp_path / "tau.json"
    tau_bench_file(path, tasks=3, trials=1)
    run_id, _ = import_files(store, "tau-bench", [path])
    failed = next(e.id for e in store.episodes(run_id) if not e.success)
    for args, verb in ((["replay", failed], "replayed"),
                       (["attribute", run_id], "attributed"),
                       (["fork", failed, "--at", "0", "--agent", "scripted:retail"], "forked")):
        out = subprocess.run([sys.executable, "-m", "trialrun.cli", *args, "--db", store.url],
                             capture_output=True, text=True, cwd=tmp_path)
        assert out.returncode == 2, (args, out.stderr)
        assert "imported from tau-bench" in out.stderr and verb in out.stderr
        assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1
