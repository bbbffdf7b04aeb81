"""Machinery shared by several analyses; nothing here is an analysis (discovery skips this subpackage).

- :mod:`~analyses.shared.igsm_inputs`: the iGSM task of a model, held-out problem sets, size checks;
- :mod:`~analyses.shared.decoding`: greedy solutions and the sentence-level decoder that can roll back, both on
  :mod:`plm_interp.generation` (one KV-cache decoder for every generation path);
- :mod:`~analyses.shared.igsm_text`: reading generated solutions (sentences, parameter names, verification);
- :mod:`~analyses.shared.tally`: per-op counts of verified solutions;
- :mod:`~analyses.shared.records`: the result base of the analyses whose result is a list of records;
- :mod:`~analyses.shared.plots`: the plots several results draw (accuracy per op, grouped bars).
- :mod:`~analyses.shared.control_cache`: the random-init control's records, fitted once and read back.
"""
