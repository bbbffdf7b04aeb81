"""iGSM (Physics of Language Models Parts 2.1/2.2): grade-school-math problems with exact ground truth.

Modules, one concept each: :mod:`hierarchy` (names), :mod:`structure` (structure graph), :mod:`dependency`
(dependency graph with exact op), :mod:`generator` (problems, reask), :mod:`solution` (shortest solution,
template hash), :mod:`text` (English formats), :mod:`tokenizer`, :mod:`sequence` (ids, masks, positions),
:mod:`verifier`, :mod:`reader` (any iGSM text -> Problem), :mod:`probes`, :mod:`retry` (Part 2.2) and :mod:`task`
(:class:`IGSMTask`); :mod:`construct` is the authors' graph construction. See docs/igsm.md.
"""
from tasks.base import register_task
from tasks.igsm.config import PRESETS, IGSMConfig
from tasks.igsm.generator import Problem, generate, reask
from tasks.igsm.reader import ReadError, read
from tasks.igsm.probes import ProbeLabels, labels_along, probe_suffix, true_labels
from tasks.igsm.retry import with_retries
from tasks.igsm.sequence import Encoded, encode, prompt_ids
from tasks.igsm.task import IGSMTask, Sample, SampleBatch
from tasks.igsm.tokenizer import Tokenizer, build_vocab, get_tokenizer
from tasks.igsm.verifier import ERROR_KINDS, VerifyReport, verify

register_task("igsm", IGSMTask.from_spec)

__all__ = [
    "ERROR_KINDS", "Encoded", "IGSMConfig", "IGSMTask", "PRESETS", "ProbeLabels", "Problem", "ReadError", "Sample",
    "SampleBatch", "Tokenizer", "VerifyReport", "build_vocab", "encode", "generate", "get_tokenizer",
    "labels_along", "probe_suffix", "prompt_ids", "read", "reask", "true_labels", "verify", "with_retries",
]
