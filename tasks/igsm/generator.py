"""Drawing whole problems: op target -> structure -> dependency graph -> solution -> split check -> names.

``generate(config, rng)`` returns a :class:`Problem` whose op equals the drawn target exactly (the target is
``min(U[1, op_max], U[1, op_max])`` or ``config.op``); only the graph is redrawn on failure, never the target, so
the op distribution is exactly the paper's. ``reask(problem, rng)`` asks a different parameter of the same
problem (the paper's "reask" evaluation).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from tasks.igsm import text
from tasks.igsm.config import IGSMConfig
from tasks.igsm.construct import build
from tasks.igsm.dependency import DepGraph
from tasks.igsm.hierarchy import Hierarchy, load_hierarchy
from tasks.igsm.solution import OutOfLetters, Step, build_solution, template_hash
from tasks.igsm.structure import INSTANCE, Param, Structure

MAX_ATTEMPTS = 3000


@dataclass
class Problem:
    """One iGSM problem with its exact ground truth.

    ``graph`` holds every parameter's formula and value; ``steps`` the shortest solution (one per necessary
    parameter, query last); ``sentence_order`` the instance parameters in the order the problem states them.
    """

    graph: DepGraph
    steps: list[Step]
    sentence_order: list[Param]
    fmt: str
    bucket: int
    config: IGSMConfig
    reasked: bool = False
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def structure(self) -> Structure:
        """The structure graph (categories, items, which item has which), from ``graph``."""
        return self.graph.structure

    @property
    def query(self) -> Param:
        """The parameter the question asks for (the last step of the solution)."""
        return self.graph.query

    @property
    def answer(self) -> int:
        """The query's true value (mod ``config.modulus``)."""
        return self.graph.values[self.query]

    @property
    def op(self) -> int:
        """Number of arithmetic operations in the shortest solution (the paper's op, its difficulty measure)."""
        return self.graph.n_op

    @property
    def ip(self) -> int:
        """Number of instance parameters, i.e. of sentences in the problem statement (the paper's ip)."""
        return len(self.graph.formulas)

    @property
    def necessary(self) -> list[Param]:
        """The parameters the query needs, in solution order (query last), as a fresh list."""
        return list(self.graph.order)

    @property
    def split(self) -> str:
        """``"train"`` or ``"test"`` by the template-hash split: train when ``bucket < config.train_buckets``."""
        return "train" if self.bucket < self.config.train_buckets else "test"

    def problem_sentences(self) -> list[str]:
        """One sentence per instance parameter, in ``sentence_order`` (no trailing periods)."""
        st, f = self.structure, self.graph.formulas
        return [text.problem_sentence(st, a, f[a]) for a in self.sentence_order]

    def question(self) -> str:
        """The question sentence, "How many X does Y have?"."""
        return text.question(self.structure, self.query)

    def solution_sentences(self) -> list[str]:
        """One sentence per step of the shortest solution (no trailing periods)."""
        return [text.step_sentence(self.structure, s) for s in self.steps]

    @property
    def problem_text(self) -> str:
        """Problem statement and question as one text: question last for ``fmt="pq"``, first for ``"qp"``."""
        body = ". ".join(self.problem_sentences()) + "."
        return f"{body} {self.question()}" if self.fmt == "pq" else f"{self.question()} {body}"

    @property
    def solution_text(self) -> str:
        """The shortest solution as one text, each sentence ending in a period."""
        return ". ".join(self.solution_sentences()) + "."

    @property
    def text(self) -> str:
        """The whole training sequence: ``<BOS> problem+question <SOL> solution <ANS> answer <EOS>``."""
        return f"<BOS> {self.problem_text} <SOL> {self.solution_text} <ANS> {self.answer} <EOS>"


def _random_topo(rng: random.Random, nodes: list[Param], parents) -> list[Param]:
    """A uniformly-choosing Kahn order of ``nodes`` (edges restricted to ``nodes``)."""
    inside = set(nodes)
    indeg = {a: sum(1 for p in set(parents(a)) if p in inside) for a in nodes}
    kids: dict[Param, list[Param]] = {a: [] for a in nodes}
    for a in nodes:
        for p in set(parents(a)):
            if p in inside:
                kids[p].append(a)
    ready = sorted(a for a in nodes if indeg[a] == 0)
    out = []
    while ready:
        a = ready.pop(rng.randrange(len(ready)))
        out.append(a)
        for c in kids[a]:
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
    return out


def _sentence_order(rng: random.Random, g: DepGraph, shuffle: str) -> list[Param]:
    if shuffle == "random":
        order = list(g.formulas)
        order.sort()
        rng.shuffle(order)
        return order
    if shuffle == "topological":
        return [a for a in _random_topo(rng, list(g.topo), g.parents) if a[0] == INSTANCE]
    return [a for a in g.topo if a[0] == INSTANCE]


def generate(config: IGSMConfig, rng: random.Random, hierarchy: Hierarchy | None = None) -> Problem:
    """Draw one problem (see module docstring); raises ``RuntimeError`` if a forced op cannot be realised."""
    hierarchy = hierarchy or load_hierarchy()
    s = config.op if config.op is not None else min(rng.randint(1, config.op_max), rng.randint(1, config.op_max))
    for _ in range(MAX_ATTEMPTS):
        g = build(rng, s, config.ip_max, config.modulus, config.max_parents)
        if g is None or g.n_op != s:  # the authors keep a draw only when its op is the target
            continue
        st = g.structure
        try:
            steps = build_solution(g, rng, letters=config.letters, letter_order=config.letter_order)
        except OutOfLetters:
            continue
        bucket = template_hash(steps, g, config.hash_modulus)
        is_train = bucket < config.train_buckets
        if (config.split == "train" and not is_train) or (config.split == "test" and is_train):
            continue
        st.categories, st.names = hierarchy.sample_layers(rng, st.sizes)
        return Problem(g, steps, _sentence_order(rng, g, config.shuffle), config.fmt, bucket, config)
    raise RuntimeError(
        f"iGSM generator: op={s} could not be realised with ip_max={config.ip_max} in {MAX_ATTEMPTS} attempts"
    )


def reask(problem: Problem, rng: random.Random) -> Problem:
    """The same problem text with a different query: any other parameter, solved in a random topological order
    of its ancestors. Its op is whatever the new query needs; the split bucket is recomputed."""
    g = problem.graph
    cands = [a for a in g.topo if a != g.query]
    for _ in range(100):
        q = cands[rng.randrange(len(cands))]
        nodes = [a for a in g.topo if a in g.ancestors(q)] + [q]
        order = _random_topo(rng, nodes, g.parents)
        order.remove(q)
        g2 = replace(g, order=order + [q])
        try:
            steps = build_solution(g2, rng, letters=problem.config.letters,
                                   letter_order=problem.config.letter_order)
        except OutOfLetters:
            continue
        bucket = template_hash(steps, g2, problem.config.hash_modulus)
        return Problem(g2, steps, list(problem.sentence_order), problem.fmt, bucket, problem.config, reasked=True)
    raise RuntimeError(f"reask: every candidate query needs more than {problem.config.letters} letters")
