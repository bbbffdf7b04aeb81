"""Context-free grammars (Physics of Language Models, Part 1) with exact ground truth.

One module per concept: :mod:`~tasks.cfg.grammar` (layered grammars, the authors' JSON),
:mod:`~tasks.cfg.textformat` (the readable text format), :mod:`~tasks.cfg.loading` (built-ins, files), :mod:`~tasks.cfg.random_grammar`, :mod:`~tasks.cfg.sampler` (annotated sampling),
:mod:`~tasks.cfg.labels` (s_l, p_l, b_l, b#), :mod:`~tasks.cfg.chart` + :mod:`~tasks.cfg.parser` (membership, parse
trees, parse counts), :mod:`~tasks.cfg.next_token` (exact next-token distribution, entropy, KL),
:mod:`~tasks.cfg.expectations`, :mod:`~tasks.cfg.corruption`, :mod:`~tasks.cfg.implicit`,
:mod:`~tasks.cfg.tokenizer` and :mod:`~tasks.cfg.task` (``CFGTask``). See docs/cfg.md.
"""
from tasks.base import register_task
from tasks.cfg.corruption import Corrupted, flip_tokens, perturb_subtree, subgrammar
from tasks.cfg.expectations import derivation_entropy_bits, expected_length, length_variance
from tasks.cfg.grammar import Grammar, GrammarError, from_authors_json
from tasks.cfg.loading import BUILTINS, load, load_builtin, resolve
from tasks.cfg.implicit import implicit_grammar, random_bags
from tasks.cfg.labels import LabelledBatch, Labels
from tasks.cfg.next_token import entropy_bits, kl_to_truth, next_token_logprobs, position_entropy_bits
from tasks.cfg.parser import accepts, count_parses, parse
from tasks.cfg.random_grammar import random_grammar
from tasks.cfg.sampler import sample
from tasks.cfg.task import CFGSamples, CFGTask, MaskedBatch
from tasks.cfg.textformat import parse_text, to_text
from tasks.cfg.tokenizer import BOS, EOS, MASK, PAD, CFGTokenizer

register_task("cfg", CFGTask.from_spec)

__all__ = [
    "BOS", "BUILTINS", "CFGSamples", "CFGTask", "CFGTokenizer", "Corrupted", "EOS", "Grammar", "GrammarError",
    "LabelledBatch", "Labels", "MASK", "MaskedBatch", "PAD", "accepts", "count_parses", "derivation_entropy_bits",
    "entropy_bits", "expected_length", "flip_tokens", "from_authors_json", "implicit_grammar", "kl_to_truth",
    "length_variance", "load", "load_builtin", "next_token_logprobs", "parse", "parse_text", "perturb_subtree",
    "position_entropy_bits", "random_bags", "random_grammar", "resolve", "sample", "subgrammar", "to_text",
]
