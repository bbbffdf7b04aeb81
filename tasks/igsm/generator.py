"""Drawing whole problems: op target -> structure -> dependency graph -> solution -> split check -> names.

``generate(config, rng)`` returns a :class:`Problem` whose op equals the drawn target exactly (the target is
``min(U[1, op_max], U[1, op_max])`` or ``config.op``), drawn as the authors' generator draws it (see
:func:`generate`), so the op distribution is exactly the paper's. ``reask(problem, rng)`` asks a different
parameter of the same problem (the paper's "reask" evaluation).
"""
from __future__ import annotations

import random
import weakref
from dataclasses import dataclass, field, replace

from tasks.igsm import text
from tasks.igsm.authors_split import authors_bucket
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


def _light(rng: random.Random, op_max: int) -> int:
    """The authors' "light" op distribution: the min of two U[1, op_max] draws."""
    return min(rng.randint(1, op_max), rng.randint(1, op_max))


def _draw(config: IGSMConfig, rng: random.Random, s: int, hierarchy: Hierarchy):
    """One attempt with op target ``s``: graph, solution, split check -> ``(graph, steps, bucket)`` or ``None``."""
    g = build(rng, s, config.ip_max, config.modulus, config.max_parents)
    if g is None:
        return None
    try:
        steps = build_solution(g, rng, letters=config.letters, letter_order=config.letter_order)
    except OutOfLetters:
        return None
    if config.template_hash == "authors":  # their hash reads the names: draw them now
        st = g.structure
        st.categories, st.names = hierarchy.sample_layers(rng, st.sizes)
    bucket = bucket_of(steps, g, config)
    is_train = bucket < config.train_buckets
    if (config.split == "train" and not is_train) or (config.split == "test" and is_train):
        return None
    return g, steps, bucket


def bucket_of(steps: list[Step], g: DepGraph, config: IGSMConfig) -> int:
    """The split bucket of a solution under ``config.template_hash`` (ours, or the authors' from the text)."""
    if config.template_hash == "authors":
        return authors_bucket(g.structure, [text.step_sentence(g.structure, s) for s in steps],
                              config.hash_modulus)
    return template_hash(steps, g, config.hash_modulus)


def _finish(config: IGSMConfig, rng: random.Random, drawn, hierarchy: Hierarchy) -> Problem:
    """Names and sentence order (independent of everything else, so drawn only for problems served)."""
    g, steps, bucket = drawn
    st = g.structure
    if not st.names:
        st.categories, st.names = hierarchy.sample_layers(rng, st.sizes)
    return Problem(g, steps, _sentence_order(rng, g, config.shuffle), config.fmt, bucket, config)


#: per random stream and config, problems drawn but not yet served, by op (see :func:`generate`)
_BUFFERS: "weakref.WeakKeyDictionary[random.Random, dict]" = weakref.WeakKeyDictionary()
BUFFER_CAP = 64


def generate(config: IGSMConfig, rng: random.Random, hierarchy: Hierarchy | None = None) -> Problem:
    """Draw one problem with the authors' distribution; raises ``RuntimeError`` if an op cannot be realised.

    The authors draw the op target ``o`` (light), then repeat: draw ``s`` (light) and a graph for ``s``, keep it
    when its op equals ``o``. A graph for ``s`` may end below ``s`` (too few places for extra parents), so an
    op-``o`` problem is a mixture over ``s >= o``. We draw the same way but keep every graph, queued by its op,
    and serve ``o`` from its queue: each served problem is an independent draw from exactly the authors'
    conditional distribution, without throwing most draws away. For a large ``o`` (where most ``s`` are below
    ``o`` and cannot give it) ``s`` is drawn given ``s >= o`` instead, and only op-``o`` draws are kept: the same
    conditional distribution, since a graph's op never exceeds its ``s``. A forced ``config.op`` uses ``s = op``
    and keeps the draws whose op is ``op``, as the authors' generator does when given ``op``.
    """
    hierarchy = hierarchy or load_hierarchy(names=config.names)
    if config.generator == "v1":
        return _generate_v1(config, rng, hierarchy)
    if config.op is not None:
        for _ in range(MAX_ATTEMPTS):
            drawn = _draw(config, rng, config.op, hierarchy)
            if drawn is not None and drawn[0].n_op == config.op:
                return _finish(config, rng, drawn, hierarchy)
        raise RuntimeError(f"iGSM generator: op={config.op} could not be realised with ip_max={config.ip_max} "
                           f"in {MAX_ATTEMPTS} attempts")
    queues = _BUFFERS.setdefault(rng, {}).setdefault((config, id(hierarchy)), {})
    M = config.op_max
    o = _light(rng, M)
    high = (M - o + 1) ** 2 < M * M / 2  # P(s >= o) < 1/2
    for _ in range(MAX_ATTEMPTS * M):
        if queues.get(o):
            return _finish(config, rng, queues[o].pop(0), hierarchy)
        if high:  # s ~ light given s >= o (the only s that can give op o): keep op o, drop the rest
            drawn = _draw(config, rng, min(rng.randint(o, M), rng.randint(o, M)), hierarchy)
            if drawn is not None and drawn[0].n_op == o:
                return _finish(config, rng, drawn, hierarchy)
            continue
        drawn = _draw(config, rng, _light(rng, M), hierarchy)  # unconditioned: every draw is queued by its op
        if drawn is not None:
            q = queues.setdefault(drawn[0].n_op, [])
            if len(q) < BUFFER_CAP:
                q.append(drawn)
    raise RuntimeError(f"iGSM generator: op={o} could not be realised with ip_max={config.ip_max} "
                       f"in {MAX_ATTEMPTS} attempts")


def _generate_v1(config: IGSMConfig, rng: random.Random, hierarchy: Hierarchy) -> Problem:
    """The first release's generator, draw for draw (see :mod:`tasks.igsm.legacy`)."""
    from tasks.igsm import legacy

    s = config.op if config.op is not None else _light(rng, config.op_max)
    for _ in range(MAX_ATTEMPTS):
        st = legacy.draw_structure(rng, legacy.sample_shape(rng, s, config.ip_max))
        n = max(rng.randint(1, s), rng.randint(1, s))
        g = legacy.build_dependency(rng, st, s, n, rng.randint(n, s), config.modulus, config.max_parents)
        if g is None:
            continue
        try:
            steps = build_solution(g, rng, letters=config.letters, letter_order=config.letter_order, shuffle=True)
        except OutOfLetters:
            continue
        bucket = template_hash(steps, g, config.hash_modulus)
        is_train = bucket < config.train_buckets
        if (config.split == "train" and not is_train) or (config.split == "test" and is_train):
            continue
        st.categories, st.names = legacy.sample_layers_v1(hierarchy, rng, st.sizes)
        return Problem(g, steps, _sentence_order(rng, g, config.shuffle), config.fmt, bucket, config)
    raise RuntimeError(f"iGSM generator: op={s} could not be realised with ip_max={config.ip_max} "
                       f"in {MAX_ATTEMPTS} attempts")


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
                                   letter_order=problem.config.letter_order,
                                   shuffle=problem.config.generator == "v1")
        except OutOfLetters:
            continue
        bucket = bucket_of(steps, g2, problem.config)
        return Problem(g2, steps, list(problem.sentence_order), problem.fmt, bucket, problem.config, reasked=True)
    raise RuntimeError(f"reask: every candidate query needs more than {problem.config.letters} letters")
