"""The names the Part 2 (iGSM) analyses import, kept in one place; each lives in its own module of
:mod:`analyses.shared` (inputs, decoding, reading solutions, tallies). New code imports from there."""
from __future__ import annotations

from analyses.shared.decoding import Decoder, cut_cache, greedy_generate, pick_cache
from analyses.shared.igsm_inputs import check_positive, eval_problems, igsm_task
from analyses.shared.igsm_text import param_names, sentence_spans, solution_words, verify_ids
from analyses.shared.tally import Tally, op_rows, tally_by_op

__all__ = ["Decoder", "Tally", "check_positive", "cut_cache", "eval_problems", "greedy_generate", "igsm_task",
           "op_rows", "param_names", "pick_cache", "sentence_spans", "solution_words", "tally_by_op", "verify_ids"]
