"""Greedy solutions on held-out iGSM sets, verified step by step and tallied per op: the measurement behind
``reasoning_level`` (Part 2.1) and ``retry_eval`` (Part 2.2), which differ only in their default sets."""
from __future__ import annotations

from typing import Any

from analyses.shared.decoding import greedy_generate
from analyses.shared.igsm_inputs import eval_problems
from analyses.shared.igsm_text import verify_ids
from analyses.shared.tally import op_rows, tally_by_op


def greedy_records(model, task, n: int, sets, max_new_tokens: int, seed: int, progress: bool,
                   desc: str) -> list[dict[str, Any]]:
    """One record per (set, op) plus op = "all": n, acc, unnecessary params/ops per correct solution, retries."""
    records = []
    for name, ps in eval_problems(task, n, sets, seed).items():
        ids = greedy_generate(model, ps, task.tokenizer, max_new_tokens, progress, desc=f"{desc} {name}")
        reps = [verify_ids(p, task.tokenizer, x) for p, x in zip(ps, ids)]
        records += op_rows({"set": name}, tally_by_op(ps, reps))
    return records
