"""Differentiate a declared loss, simplify, prove the canonical form, and record the steps.

Every equation in :attr:`Derivation.steps` is produced by SymPy from the declaration and checked
by SymPy (:func:`symloss.algebra.equal`); nothing here is a typed-in result.

derive sits below the evaluators and the renderers and uses neither. :class:`Derivation` is what
a user holds, so its rendering (``latex``, ``markdown``, ``text``, ``example``) and its numbers
(``loss_fn``, ``grad_fn``, ``hvp_fn``, ``hess_diag_fn``, through ``_numeric``) are methods here
all the same: façades, each a lazy import and one ``return`` that hands the derivation to the
higher layer -- the only upward imports of the package (``FACADES`` in tests/test_layers.py).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import sympy as sp
from numpy import ndarray as _ndarray

from .algebra import equal, expand_products, is_zero, reduce_sums, tidy
from .declaration import Declaration, Kink, Partial
from .primitives import SUM_INDEX, accurate
from .words import Phrase

if TYPE_CHECKING:

    from .catalog import LossSpec

__all__ = ["HESSIAN_INDEX", "Derivation", "Kink", "Step"]

#: The second free class index of a class-axis Hessian, ∂²ℓ/∂zᵢ∂zⱼ.
HESSIAN_INDEX = sp.Symbol("j", integer=True, positive=True)

_ELL = sp.Symbol("ℓ")
_L = sp.Symbol("L")
_SAMPLES = sp.Symbol("n", integer=True, positive=True)
_M = sp.Symbol("m", integer=True, positive=True)
_T = sp.Symbol("t", integer=True, positive=True)


@dataclass(frozen=True)
class Step:
    """One step of a derivation: ``lhs = rhs[0] = rhs[1] = …`` and why it holds.

    ``checked`` is True when SymPy proved every ``=`` in the chain, None for a definition (there
    is nothing to prove), and False when SymPy could not reduce a difference to 0.
    """

    title: str
    why: str
    lhs: sp.Expr
    rhs: tuple[sp.Expr, ...]
    checked: bool | None

    @property
    def equations(self) -> list[sp.Eq]:
        """The chain as SymPy equations ``Eq(lhs, r)``, unevaluated."""
        return [sp.Eq(self.lhs, r, evaluate=False) for r in self.rhs]


def drop_distributions(expr: sp.Expr) -> sp.Expr:
    """``expr`` without its ``DiracDelta`` terms: the derivative almost everywhere.

    At a kink, ``sympy.diff`` of ``sign`` or ``Heaviside`` gives a Dirac delta (a measure
    concentrated on the kink). The almost-everywhere derivative drops it, as autograd's double
    backward does.
    """
    return expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)


def _has_root_of_sums(expr: sp.Expr) -> bool:
    return any(p.exp.is_Rational and not p.exp.is_Integer and p.base.has(sp.Sum)
               for p in expr.atoms(sp.Pow))


#: A named power of sums: ``(d, X, q)`` with ``d`` a positive symbol and ``d^q = X``.
_NamedPower = tuple[sp.Symbol, sp.Expr, sp.Expr]


def _norm_coordinates(
    expr: sp.Expr, powers: list[_NamedPower]
) -> tuple[sp.Expr, list[_NamedPower], list[sp.Symbol]]:
    """``expr`` and ``powers`` in the coordinates of the norms' entries, with their signs apart.

    A named power whose sums hold ``|uₖ|`` with ``uₖ`` linear in one row's entry ``bₖ``
    (``uₖ = aₖ − bₖ + ε``: a p-norm distance) gets ``uₖ`` as a variable of its own: every
    ``b[·]`` is replaced by ``(U[·] − rest)/c`` (``uₖ = c·bₖ + rest``), a change of variables
    (b ↦ U is one-to-one for the other entries fixed, so an identity in U is one in b); each
    distance takes a row not taken before, so their changes are triangular, one-to-one
    together. Then ``Uⱼ = sign(Uⱼ)·|Uⱼ|`` (true for every real Uⱼ) is written ``sⱼrⱼ`` with
    ``rⱼ = |Uⱼ|`` a positive symbol and ``sⱼ`` free: ``|u|^(p−1)·sign(u)·u = |u|^p`` and
    ``Σₖ|uₖ|^p = dᵖ`` are then products of powers that cancel as monomials do (SymPy adds the
    exponents of rⱼ, ``(rⱼ^a)^b = rⱼ^(ab)``: true for rⱼ > 0). The proof holds where every
    rⱼ > 0, i.e. every entry uⱼ ≠ 0 (almost everywhere; at uⱼ = 0 the Hessian's
    ``|uⱼ|^(p−2)`` is infinite for p < 2 anyway): there ``sⱼ = ±1``, so ``sⱼ² = 1``
    (:func:`_sign_parity`). A norm with no row left to solve for keeps ``|uₖ|``
    as it is (opaque). Returns the rewritten expression, powers, and the labels of the signs'
    bases ``s`` (labels: rebuilding an IndexedBase drops its assumptions, and with them its
    equality to the one made here).
    """
    signs: list[sp.Symbol] = []
    solved: set[sp.Basic] = set()
    for j in range(len(powers)):
        base = powers[j][1]
        # the entries: |uₖ|, and uₖ itself where SymPy wrote |uₖ|ⁿ as uₖⁿ (n even)
        entries_of = {f.args[0] for f in base.atoms(sp.Abs)} | {
            f.base for f in base.atoms(sp.Pow) if f.base.is_Add}
        for u in sorted(entries_of, key=sp.default_sort_key):
            entries = sorted(u.atoms(sp.Indexed), key=sp.default_sort_key)
            indices = {x.indices for x in entries}
            if len(indices) != 1 or len(next(iter(indices))) != 1:
                continue
            (k,) = next(iter(indices))
            # a row not solved for yet, entering uₖ as c·bₖ with c a nonzero number
            linear = [x for x in entries if x.base.label not in solved
                      and sp.diff(u, x).is_number and sp.diff(u, x) != 0]
            if not linear:
                continue
            b = linear[-1]
            c = sp.diff(u, b)
            rest = sp.expand(u - c * b)
            big_u = sp.IndexedBase(sp.Dummy("U"), real=True)
            r = sp.IndexedBase(sp.Dummy("r"), positive=True)
            s = sp.IndexedBase(sp.Dummy("s"), real=True)

            def change(e: sp.Expr, b: sp.Indexed = b, c: sp.Expr = c, rest: sp.Expr = rest,
                       k: sp.Expr = k, big_u: sp.IndexedBase = big_u, r: sp.IndexedBase = r,
                       s: sp.IndexedBase = s) -> sp.Expr:
                e = e.xreplace({x: (big_u[x.indices[0]] - rest.xreplace({k: x.indices[0]})) / c
                                for x in e.atoms(sp.Indexed) if x.base.label == b.base.label})
                apart: dict[sp.Basic, sp.Expr] = {}
                for f in e.atoms(sp.Abs, sp.sign):
                    (x,) = f.args
                    if isinstance(x, sp.Indexed) and x.base.label == big_u.label:
                        apart[f] = (r if isinstance(f, sp.Abs) else s)[x.indices[0]]
                e = e.xreplace(apart)
                return e.xreplace({x: s[x.indices[0]] * r[x.indices[0]]
                                   for x in e.atoms(sp.Indexed) if x.base.label == big_u.label})

            expr = change(expr)
            powers = [(d, change(x), q) for d, x, q in powers]
            solved.add(b.base.label)
            signs.append(s.label)
            break
    return expr, powers, signs


def _sign_parity(expr: sp.Expr, signs: list[sp.Symbol]) -> sp.Expr:
    """``sⱼⁿ`` as ``sⱼ^(n mod 2)`` for the sign bases of :func:`_norm_coordinates`: sⱼ = ±1
    where the proof holds (every entry nonzero), so sⱼ² = 1 and 1/sⱼ = sⱼ."""
    if not signs:
        return expr
    labels = set(signs)
    return expr.replace(
        lambda e: e.is_Pow and isinstance(e.base, sp.Indexed) and e.base.base.label in labels
        and e.exp.is_Integer and not 0 <= int(e.exp) <= 1,
        lambda e: e.base ** (int(e.exp) % 2))


def _zero_by_radicals(expr: sp.Expr, powers: tuple[_NamedPower, ...] = ()) -> bool:
    """True when ``expr`` is 0 as a rational function once each root of sums is named.

    Sums become symbols; for each root ``X^(m/q)`` (and each named power ``d`` with
    ``d^q = X`` in ``powers``: a norm ``d = X^(1/q)``), X linear in one of those symbols S, S
    is replaced by its value ``r^q − (X − S)`` (r a positive symbol, so ``X^(1/q) = r``):
    norms such as √(Σaₖ² + ε) or ``(Σₖ|uₖ|ᵖ)^(1/p)`` and their powers then cancel as
    polynomials do (``is_zero`` treats ``X^(1/q)`` and X as unrelated). A p-norm's entries
    ``|uₖ|`` are first made variables of their own (:func:`_norm_coordinates`; the proof then
    holds where no entry uₖ is 0). Each sum a free symbol: a rational function that is 0 so
    is 0 whatever values the sums take; ``(d^q)^(1/q) = d`` as d > 0. False where a root of
    sums is left that no sum solves.

    >>> import sympy as sp
    >>> a, k, n = sp.IndexedBase("a"), sp.Symbol("k", integer=True), sp.Symbol("n")
    >>> s = sp.Sum(a[k] ** 2, (k, 1, n)) + sp.Symbol("epsilon", positive=True)
    >>> _zero_by_radicals(1 / sp.sqrt(s) - sp.sqrt(s) / s)
    True
    >>> d = sp.Symbol("d", positive=True)
    >>> _zero_by_radicals(d**3 - d * s, ((d, s, 2),))
    True
    >>> u = sp.Abs(a[k] - 1)
    >>> _zero_by_radicals(sp.Sum(u**3, (k, 1, n)) / d**3 - 1, ((d, sp.Sum(u**3, (k, 1, n)), 3),))
    True
    >>> _zero_by_radicals(sp.Sum(u**3, (k, 1, n)) / d**2 - 1, ((d, sp.Sum(u**3, (k, 1, n)), 3),))
    False
    """
    from .algebra import normalize

    e, relations, signs = _norm_coordinates(
        normalize(expr), [(r, normalize(x), q) for r, x, q in powers if expr.has(r)])

    def prepared(x: sp.Expr) -> sp.Expr:
        x = _sign_parity(expand_products(reduce_sums(x)), signs)
        return _sign_parity(expand_products(reduce_sums(x)), signs)

    e = prepared(e)
    relations = [(r, prepared(x), q) for r, x, q in relations]
    sums = set(e.atoms(sp.Sum)).union(*(x.atoms(sp.Sum) for _, x, _ in relations))
    named = {s: sp.Dummy("S", real=True) for s in sums}
    e = e.xreplace(named)
    relations = [(r, x.xreplace(named), q) for r, x, q in relations]

    def summed(x: sp.Expr) -> bool:
        return any(isinstance(s, sp.Dummy) and s.name == "S" for s in x.free_symbols)

    def solve(base: sp.Expr, root: sp.Expr, q: sp.Expr) -> dict[sp.Basic, sp.Expr] | None:
        """S ↦ (root^q − (base − c·S))/c for a symbol S of ``base`` (c·S its only S-term)."""
        for s in sorted(base.free_symbols, key=sp.default_sort_key):
            if isinstance(s, sp.Dummy) and s.name == "S":
                poly = sp.Poly(base, s)
                if poly.degree() == 1 and poly.LC().is_number:
                    return {s: expand_products((root**q - (base - poly.LC() * s)) / poly.LC())}
        return None

    for _ in range(16):
        if relations:
            root, base, q = relations.pop(0)
            value = solve(expand_products(base), root, q)
        else:
            pows = sorted((p for p in e.atoms(sp.Pow) if p.exp.is_Rational
                           and not p.exp.is_Integer and summed(p.base)), key=sp.default_sort_key)
            if not pows:
                return bool(expand_products(sp.numer(sp.together(e))) == 0)
            value = solve(expand_products(pows[0].base), sp.Dummy("r", positive=True),
                          sp.Integer(pows[0].exp.q))
        if value is None:
            return False
        e = _sign_parity(e.subs(value), signs)
        relations = [(r, x.subs(value), q) for r, x, q in relations]
    return False


def _class_count(derivation: Derivation) -> sp.Expr:
    """The symbolic number of classes of a class-axis derivation."""
    from .primitives import NUM_CLASSES

    symbols = derivation.declaration.symbols
    # A row-wise loss (symloss.rows) names its axis by what it holds: classes or features.
    return symbols.get("num_classes", symbols.get("num_features", NUM_CLASSES))  # type: ignore[return-value]


class _Mixed(sp.Expr):
    """The display of a mixed second partial ``∂²num/∂a∂b``."""

    def __new__(cls, num: sp.Basic, a: sp.Basic, b: sp.Basic) -> _Mixed:
        return sp.Expr.__new__(cls, num, a, b)

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        num, a, b = (printer._print(x) for x in self.args)
        return rf"\frac{{\partial^{{2}} {num}}}{{\partial {a}\,\partial {b}}}"

    def _sympystr(self, printer: object) -> str:
        num, a, b = (printer._print(x) for x in self.args)  # type: ignore[attr-defined]
        return f"∂^2{num}/∂{a}∂{b}"

    def _pretty(self, printer: object) -> Any:
        from sympy.printing.pretty.stringpict import prettyForm

        num, a, b = (printer._print(x) for x in self.args)  # type: ignore[attr-defined]
        top = prettyForm(*num.left("∂²"))
        bottom = prettyForm(*prettyForm(*a.left("∂")).right(prettyForm(*b.left(" ∂"))))
        return top / bottom


def _chain(items: list[sp.Expr]) -> tuple[sp.Expr, ...]:
    """Drop consecutive duplicates from a chain of equal expressions."""
    out: list[sp.Expr] = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return tuple(out)


def _cancelled(product: sp.Expr, outer: sp.Expr, inner: sp.Expr) -> list[sp.Expr]:
    """The product of the chain rule with each outer term multiplied into the inner factor (an
    element-wise loss; SymPy cancels p against 1/p as it multiplies), then simplified in p."""
    in_var = tidy(product)
    if isinstance(product, sp.Sum):
        return [in_var]
    terms = sp.Add.make_args(sp.expand(outer, deep=False))
    return [sp.Add(*(t * inner for t in terms)), in_var]


def _frozen(value: Any) -> Any:
    """A hashable stand-in for an option value (an array by its shape and bytes)."""
    import numpy as np

    if value is None or isinstance(value, str | bool | int | float):
        return value
    arr = np.asarray(to_numpy(value), dtype=np.float64)
    return ("array", arr.shape, arr.tobytes())


def to_numpy(value: Any) -> Any:
    """A torch tensor (on any device) as a NumPy array on the CPU; anything else unchanged.

    The one conversion at the API boundary: ``loss_fn``, ``grad_fn`` and ``hvp_fn`` take
    tensors (detached, moved to the CPU) and return NumPy. torch is never imported here: a
    tensor is recognised by its type's module.
    """
    module = type(value).__module__
    if (module == "torch" or module.startswith("torch.")) and hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return value


def _numpy_arrays(arrays: tuple[Any, ...]) -> tuple[Any, ...]:
    """:func:`to_numpy` of each array (``arrays`` itself where all are NumPy arrays: the
    common call costs a type check per array)."""
    for value in arrays:
        if type(value) is not _ndarray:
            return tuple(map(to_numpy, arrays))
    return arrays


def _all_equal(
    items: tuple[sp.Expr, ...], substitute: Callable[[sp.Expr], sp.Expr] = lambda e: e
) -> bool:
    """True when SymPy proves every neighbouring pair equal (after ``substitute``)."""
    items = tuple(substitute(e) for e in items)
    return all(equal(a, b) for a, b in itertools.pairwise(items))


class _ShownArray(str):
    """An array option as a reader sees it: its values (the first and last few when long),
    a ``str`` whose ``repr`` is itself, so ``f"{k}={v!r}"`` prints ``weight=[1.0, 2.0]``."""

    #: Arrays with more values than this show their first 3 and last 2 values.
    LONG = 8

    def __new__(cls, value: Any) -> _ShownArray:
        import numpy as np

        flat = np.asarray(value).ravel().tolist()
        if len(flat) <= cls.LONG and np.ndim(value) == 1:
            return super().__new__(cls, repr(flat))
        if len(flat) <= cls.LONG:
            return super().__new__(cls, repr(np.asarray(value).tolist()))
        head = ", ".join(repr(v) for v in flat[:3])
        tail = ", ".join(repr(v) for v in flat[-2:])
        shape = "" if np.ndim(value) == 1 else f", shape {tuple(np.shape(value))}"
        return super().__new__(cls, f"[{head}, …, {tail}] ({len(flat)} values{shape})")

    def __repr__(self) -> str:
        return str(self)


class Derivation:
    """The derivation of one loss with one set of options.

    Build it with :func:`symloss.derive`. Attributes are computed on first use and cached.

    >>> import symloss
    >>> d = symloss.derive("bce")
    >>> d.gradient
    -y + sigmoid(z)
    >>> d.proved
    True
    """

    def __init__(
        self, spec: LossSpec, options: Mapping[str, Any], declaration: Declaration
    ) -> None:
        self.spec = spec
        self.options = dict(options)
        self.declaration = declaration

    def _with_options(self, options: Mapping[str, Any]) -> Derivation:
        """This derivation with the option values (arrays) the numbers need.

        The symbolic results depend only on which options are present, so they are shared.
        """
        twin = copy.copy(self)
        twin.__dict__.pop("_numeric", None)
        twin.__dict__.pop("_variants", None)
        twin.options = dict(options)
        return twin

    @property
    def symbolic_key(self) -> tuple[Any, ...] | None:
        """``(loss name, the options the symbolic derivation reads)`` for a catalogue
        derivation: with symloss's code, all its expressions depend on (the fast path keeps
        its printed kernels on disk by it). ``None`` for a loss of the user's own, or a
        derivation that evaluates other forms than its name's (a twin)."""
        from . import _derive_symbolic, _symbolic_key
        from .catalog import CATALOG

        if CATALOG.get(self.spec.name) is not self.spec:
            return None
        key = _symbolic_key(self.options, self.spec)
        if _derive_symbolic(self.spec.name, key).declaration is not self.declaration:
            return None
        return (self.spec.name, key)

    def with_options(self, **changes: Any) -> Derivation:
        """This loss with some options changed: the explicit way to make a variant.

        The options are validated; the declaration is made afresh only where the change alters
        the symbolic derivation (otherwise the symbolic results are shared); a variant is
        built once: asking again for the same changes returns the same derivation, with the
        kernels it has already compiled.

        Args:
            **changes: options to change (torch's keywords, as :func:`symloss.derive` takes).

        Returns:
            A :class:`Derivation` of the same loss with those options.

        >>> import symloss
        >>> d = symloss.derive("bce_with_logits")
        >>> d.with_options(reduction="sum").options["reduction"]
        'sum'
        >>> d.with_options(reduction="sum") is d.with_options(reduction="sum")
        True
        """
        variants = self.__dict__.setdefault("_variants", {})
        key = tuple(sorted((k, _frozen(v)) for k, v in changes.items()))
        if key not in variants:
            options = self.spec.validate({**self.options, **changes})
            from . import _derive_symbolic, _symbolic_key
            from .catalog import CATALOG

            if CATALOG.get(self.spec.name) is self.spec:
                symbolic = _derive_symbolic(self.spec.name, _symbolic_key(options, self.spec))
            else:  # a loss of the user's own (symloss.custom): declared here
                symbolic = type(self)(self.spec, options, self.spec.declare(options))
            variants[key] = symbolic._with_options(options)
        return variants[key]  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.display_options.items())
        return f"<Derivation {self.name}({shown}) proved={self.proved}>"

    # ------------------------------------------------------------------ identity
    @property
    def name(self) -> str:
        """The torch.nn.functional name of the loss."""
        return self.spec.name

    @property
    def display_options(self) -> dict[str, Any]:
        """The options as a reader wants to see them: an array by its values, abbreviated
        when long (its ``repr`` is ``[1.0, 2.0, 3.0]``, ``[0.1, 0.2, 0.3, …, 9.9] (100 values)``).

        >>> import symloss
        >>> symloss.derive("ce", weight=[1.0, 2.0, 3.0]).display_options["weight"]
        [1.0, 2.0, 3.0]
        """
        shown: dict[str, Any] = {}
        for key, value in self.options.items():
            if value is None:
                continue
            if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
                value = _ShownArray(value)
            shown[key] = value
        return shown

    # ------------------------------------------------------------------ symbolic results
    @property
    def input(self) -> sp.Expr:
        """The variable differentiated with respect to."""
        return self.declaration.input

    @property
    def loss(self) -> sp.Expr:
        """The per-element loss, as evaluated (stable form)."""
        return self.declaration.loss

    @cached_property
    def raw_gradient(self) -> sp.Expr:
        """``sympy.diff(loss, input)`` before any simplification."""
        return sp.diff(self.declaration.loss, self.declaration.input)

    @cached_property
    def gradient(self) -> sp.Expr:
        """∂ℓ/∂input per element: ``sympy.diff`` of :attr:`loss`, simplified."""
        return tidy(self.raw_gradient)

    @property
    def canonical(self) -> sp.Expr:
        """The canonical form the gradient is proved equal to."""
        return self.declaration.canonical

    @property
    def assumptions(self) -> list[tuple[sp.Expr, sp.Expr]]:
        return [(a.lhs, a.rhs) for a in self.declaration.assumptions]

    @cached_property
    def _norms(self) -> tuple[Any, ...]:
        """The definitions that name a power of sums, ``d = X^e`` (a norm: √(Σuₖ²),
        ``(Σₖ|uₖ|ᵖ)^(1/p)``), d positive: the proofs know d by ``d^(1/e) = X``."""
        return tuple(x for x in self.declaration.definitions
                     if x.symbol.is_positive and x.expr.is_Pow and x.expr.exp.is_Rational
                     and x.expr.exp != 1 and x.expr.base.has(sp.Sum))

    def _prove(self, a: sp.Expr, b: sp.Expr) -> bool:
        """``a == b`` proved by SymPy (:func:`~symloss.algebra.is_zero`); where roots of sums
        or named norms appear (norms of rows), first with the numeric definitions kept as
        symbols and each such root named (:func:`_zero_by_radicals`)."""
        subst = self.declaration.substitute_definitions
        norms = any(a.has(x.symbol) or b.has(x.symbol) for x in self._norms)
        if (norms or _has_root_of_sums(subst(a) - subst(b))) and self._prove_with(a, b, True):
            return True
        return self._prove_with(a, b, False)

    def _prove_with(self, a: sp.Expr, b: sp.Expr, radicals: bool) -> bool:
        d = self.declaration
        if radicals:
            # ε stays a symbol (an identity for every ε holds for aten's), and so does a norm
            # d = X^e of a definition, known by d^(1/e) = X (no root of sums is expanded)
            roots = self._norms
            kept = dataclasses.replace(d, definitions=tuple(
                x for x in d.definitions if not x.expr.is_number and x not in roots))
            plain = dataclasses.replace(d, definitions=tuple(
                x for x in d.definitions if not x.expr.is_number))
            powers = tuple((x.symbol, plain.substitute_definitions(x.expr.base), 1 / x.expr.exp)
                           for x in roots)
            d = kept

            def zero(e: sp.Expr) -> bool:
                return _zero_by_radicals(e, powers)
        else:
            def zero(e: sp.Expr) -> bool:
                return is_zero(e, self.assumptions)
        a, b = d.substitute_definitions(a), d.substitute_definitions(b)
        if zero(a - b):
            return True
        # Congruence: a step or hinge of ``a`` whose argument is proved equal to that of one
        # in ``b`` is that one (an evaluated form writes the argument without cancellation).
        from .hinges import hinge, step

        swap: dict[sp.Basic, sp.Basic] = {}
        for kind in (step, hinge, sp.Heaviside):
            theirs = list(b.atoms(kind))
            for f in a.atoms(kind) - set(theirs):
                same = next((g for g in theirs if g.args[1:] == f.args[1:]
                             and zero(f.args[0] - g.args[0])), None)
                if same is not None:
                    swap[f] = same
        a = a.xreplace(swap)
        # A Piecewise of ``a`` alone (a form chosen by the sign of a value): every branch must
        # be equal, whichever condition holds.
        pieces = sorted(a.atoms(sp.Piecewise) - b.atoms(sp.Piecewise), key=sp.default_sort_key)
        if pieces:
            return all(self._prove_with(a.xreplace({pieces[0]: value}), b, radicals)
                       for value, _ in pieces[0].args)
        return bool(swap) and zero(a - b)

    @cached_property
    def proved(self) -> bool:
        """True only when SymPy reduces ``gradient - canonical`` to 0 (under the assumptions)."""
        return self._prove(self.gradient, self.canonical)

    @cached_property
    def kernel_loss(self) -> sp.Expr:
        """The form of the loss the kernel evaluates (proved equal to :attr:`loss`)."""
        declared = self.declaration.stable_loss
        return self.declaration.loss if declared is None else declared

    @cached_property
    def kernel_loss_proved(self) -> bool:
        """True when the evaluated loss is proved equal to the declared one."""
        return self._prove(self.kernel_loss, self.declaration.loss)

    @cached_property
    def kernel_gradient(self) -> sp.Expr:
        """The form of the gradient the NumPy kernel evaluates (proved equal to the gradient)."""
        declared = self.declaration.stable_gradient
        return self.raw_gradient if declared is None else declared

    @cached_property
    def soft_gradient(self) -> sp.Expr:
        """The form a soft target's gradient is evaluated in (proved equal to the gradient)."""
        declared = self.declaration.stable_soft_gradient
        return self.gradient if declared is None else declared

    @cached_property
    def soft_gradient_proved(self) -> bool:
        return self._prove(self.soft_gradient, self.raw_gradient)

    @cached_property
    def kernel_proved(self) -> bool:
        """True when the kernel's form is proved equal to the derived gradient."""
        return self._prove(self.kernel_gradient, self.raw_gradient)

    # ------------------------------------------------------------------ steps
    @cached_property
    def steps(self) -> list[Step]:
        """The derivation in the seed notebook's order, each step produced and checked by SymPy."""
        d = self.declaration
        z = d.input
        steps: list[Step] = []
        link = d.link
        if link is not None:
            var_elem = link.var[SUM_INDEX] if link.class_axis else link.var  # type: ignore[index]
            expr_elem = link.expr
            chain = _chain([expr_elem, link.definition])
            steps.append(Step(Phrase("title.link"), link.why, var_elem, chain, _all_equal(chain)))
        for definition in d.definitions:
            steps.append(Step(Phrase("title.definition"), definition.why, definition.symbol, (definition.expr,), None))

        ell = _ELL
        loss_chain: list[sp.Expr] = []
        if link is not None and d.loss_in_link is not None:
            loss_chain += [d.loss_in_link, link.from_var(d.loss_in_link)]
        loss_chain.append(d.loss)
        chain = _chain(loss_chain)
        in_input = link.from_var if link is not None else (lambda e: e)
        steps.append(
            Step(Phrase("title.per_element_loss"), d.loss_why, ell, chain, _all_equal(chain, in_input))
        )
        if d.stable_loss is not None:
            steps.append(Step(Phrase("title.evaluated"), d.stable_loss_why or Phrase("why.kernel_form"),
                              ell, (self.kernel_loss,), self.kernel_loss_proved))
        steps.append(self._reduction_step())

        if link is not None and d.loss_in_link is not None:
            steps += self._chain_rule_steps()
        else:
            raw = self.raw_gradient
            chain = _chain([raw, self.gradient])
            steps.append(
                Step(
                    Phrase("title.derivative"),
                    Phrase("why.derivative"),
                    Partial(ell, z),
                    chain,
                    _all_equal(chain),
                )
            )

        canonical_chain = _chain([self.gradient, self.canonical])
        why = d.canonical_why
        if d.assumptions:
            why = Phrase("why.assuming", why=why, facts="; ".join(a.why for a in d.assumptions))
        steps.append(
            Step(Phrase("title.canonical"), why, Partial(ell, z), canonical_chain, self.proved)
        )
        if d.stable_gradient is not None or self.raw_gradient != self.gradient:
            steps.append(
                Step(
                    Phrase("title.evaluated"),
                    d.stable_why or Phrase("why.kernel_form"),
                    Partial(ell, z),
                    (self.kernel_gradient,),
                    self.kernel_proved,
                )
            )
        steps += self._also_wrt_steps()
        steps += self._kink_steps(order=1)
        steps.append(self._reduced_gradient_step())
        return steps

    def _reduction_step(self) -> Step:
        d = self.declaration
        reduction = self.options.get("reduction", "mean")
        ell_m = sp.IndexedBase(_ELL)[_M]
        total = sp.Sum(ell_m, (_M, 1, _SAMPLES))
        if reduction in ("mean", "batchmean"):
            return Step(Phrase("title.reduction"), d.mean_why, _L, (total / d.mean_denominator,), None)
        if reduction == "sum":
            return Step(Phrase("title.reduction"), Phrase("why.reduction_sum"), _L, (total,), None)
        return Step(
            Phrase("title.reduction"),
            Phrase("why.reduction_none"),
            sp.IndexedBase(_L)[_M],
            (ell_m,),
            None,
        )

    def _chain_rule_steps(self) -> list[Step]:
        d = self.declaration
        link = d.link
        assert link is not None and d.loss_in_link is not None
        z = d.input
        ell = _ELL
        k = SUM_INDEX
        if link.class_axis:
            p_k = link.var[k]  # type: ignore[index]
            fresh = sp.Symbol("m", integer=True, positive=True)
            d_loss_dp = reduce_sums(sp.diff(d.loss_in_link, link.var[fresh])).subs(fresh, k)  # type: ignore[index]
            dp_dz = link.to_var(sp.diff(link.expr, z))
            rule = sp.Sum(Partial(ell, p_k) * Partial(p_k, z), (k, 1, link.expr.args[2]))
            product = sp.Sum(d_loss_dp * dp_dz, (k, 1, link.expr.args[2]))
            rule_why = Phrase("why.chain_rule_class")
        else:
            p_k = link.var
            d_loss_dp = sp.diff(d.loss_in_link, link.var)
            dp_dz = link.to_var(sp.diff(link.expr, z))
            rule = Partial(ell, p_k) * Partial(p_k, z)
            product = d_loss_dp * dp_dz
            rule_why = Phrase("why.chain_rule")
        d_loss_dp_tidy = tidy(d_loss_dp)
        product_tidy = tidy(link.from_var(product))
        direct = self.raw_gradient
        # The cancellation the notebook writes by hand: each term of the outer factor times the
        # inner one, where SymPy cancels the prediction's powers, then the sum in p.
        product_chain = _chain([product, *_cancelled(product, d_loss_dp, dp_dz), product_tidy])
        product_ok = _all_equal(product_chain, link.from_var) and equal(
            link.from_var(product), direct
        ) and equal(product_tidy, self.gradient)
        return [
            Step(Phrase("title.chain_rule"), rule_why, Partial(ell, z), (rule,), None),
            Step(
                Phrase("title.outer"),
                Phrase("why.outer"),
                Partial(ell, p_k),
                _chain([d_loss_dp, d_loss_dp_tidy]),
                equal(d_loss_dp, d_loss_dp_tidy),
            ),
            Step(
                Phrase("title.inner"),
                Phrase("why.inner", link=link.name),
                Partial(p_k, z),
                _chain([sp.diff(link.expr, z), dp_dz]),
                equal(link.from_var(dp_dz), sp.diff(link.expr, z)),
            ),
            Step(
                Phrase("title.product"),
                Phrase("why.product"),
                Partial(ell, z),
                product_chain,
                product_ok,
            ),
        ]

    def _reduced_gradient_step(self) -> Step:
        d = self.declaration
        reduction = self.options.get("reduction", "mean")
        z = d.input
        if isinstance(z, sp.Indexed):
            z_m = sp.IndexedBase(z.base.label)[_M, z.indices[0]]
            at_m: dict[sp.Basic, sp.Basic] = {}
        else:
            z_m = sp.IndexedBase(z)[_M]
            # For an element-wise loss, element m's gradient is the per-element one at (z_m, y_m).
            y = d.target
            at_m = {z: z_m, y: sp.IndexedBase(y)[_M]}
            for arg in self.spec.arguments:  # var, input2: one value per element too
                symbol = d.symbols.get(arg)
                if symbol is not None and symbol not in at_m:
                    at_m[symbol] = sp.IndexedBase(symbol)[_M]
        ell_m = sp.IndexedBase(_ELL)[_M]
        per_element = Partial(ell_m, z_m)
        if reduction == "none":
            return Step(
                Phrase("title.gradient"),
                Phrase("why.gradient_none"),
                Partial(sp.IndexedBase(_L)[_M], z_m),
                (per_element, self.canonical.subs(at_m)),
                True,
            )
        denominator = d.mean_denominator if reduction in ("mean", "batchmean") else sp.S.One
        # The bookkeeping is linear: check with SymPy that ∂/∂ζ_t Σ_m F(ζ_m) / D = F'(ζ_t) / D
        # for a denominator D that does not depend on the input.
        f = sp.Function("F")
        zz = sp.IndexedBase("zeta")
        big_d = sp.Symbol("D", positive=True)
        total = sp.Sum(f(zz[_M]), (_M, 1, _SAMPLES)) / big_d
        lhs = reduce_sums(sp.diff(total, zz[_T])).doit()
        checked = not denominator.has(zz) and not denominator.has(z) and bool(
            sp.simplify(lhs - sp.diff(f(zz[_T]), zz[_T]) / big_d) == 0
        )
        why = Phrase("why.reduced_mean" if reduction != "sum" else "why.reduced_sum")
        return Step(
            Phrase("title.reduced_gradient"),
            why,
            Partial(_L, z_m),
            _chain([per_element / denominator, self.canonical.subs(at_m) / denominator]),
            checked,
        )

    # ------------------------------------------------------------------ other arguments
    def gradient_wrt(self, name: str) -> sp.Expr:
        """∂ℓ/∂(argument ``name``) per element, by ``sympy.diff``; ``"input"`` is :attr:`gradient`.

        >>> import symloss
        >>> symloss.derive("gaussian_nll_loss").gradient_wrt("var")
        -((-y + z)**2/sigma^2 - 1)/(2*sigma^2)
        """
        if name == "input" or self.wrt_variable(name) == self.input:
            return self.gradient
        cache = self.__dict__.setdefault("_wrt_cache", {})
        if name not in cache:
            cache[name] = tidy(sp.diff(self.declaration.loss, self.wrt_variable(name)))
        return cache[name]  # type: ignore[no-any-return]

    def wrt_variable(self, name: str) -> sp.Expr:
        """The variable of argument ``name`` that ``sympy.diff`` takes: its symbol, or its
        element at the input's index (``b[i]``) for an array of a row-wise loss."""
        symbol = self.declaration.symbols[name]
        if isinstance(symbol, sp.IndexedBase) and isinstance(self.input, sp.Indexed):
            return symbol[self.input.indices]
        return symbol  # type: ignore[return-value]

    def _also_wrt_steps(self) -> list[Step]:
        steps = []
        for other in self.declaration.also_wrt:
            symbol = self.wrt_variable(other.name)
            raw = sp.diff(self.declaration.loss, symbol)
            derived = self.gradient_wrt(other.name)
            checked = equal(raw, derived) and self._prove(derived, other.canonical)
            steps.append(
                Step(
                    Phrase("title.wrt", name=other.name),
                    Phrase("why.wrt", name=other.name, why=other.why),
                    Partial(_ELL, symbol),
                    _chain([raw, derived, other.canonical]),
                    checked,
                )
            )
        return steps

    # ------------------------------------------------------------------ kinks
    def _kink_steps(self, order: int) -> list[Step]:
        steps = []
        ell = _ELL
        z = self.input
        for kink in self.declaration.kinks:
            at = dict(kink.at)
            if order == 1:
                expected, derived, what = kink.value, self.gradient, Partial(ell, z)
            else:
                if kink.hessian_value is None:
                    continue
                expected, derived = kink.hessian_value, self.hessian
                what = Partial(ell, z, 2)
            value = sp.piecewise_fold(self._settle(derived.subs(at)))
            checked = is_zero(value - expected)
            lhs = sp.Subs(what, tuple(at), tuple(at.values()))
            steps.append(Step(Phrase("title.kink"), kink.why, lhs, _chain([value, expected]), checked))
        return steps

    def _settle(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with each step or Heaviside whose argument SymPy proves 0 evaluated at 0.

        A row-wise loss's kink is where a sum-valued argument vanishes (``margin = c``, the
        cosine); ``subs`` alone does not see that the argument is 0.
        """
        from .hinges import step

        subst = self.declaration.substitute_definitions

        def at_zero(e: sp.Basic) -> bool:
            return (
                isinstance(e, step | sp.Heaviside)
                and not e.args[0].is_number
                and is_zero(subst(e.args[0]))
            )

        return expr.replace(at_zero, lambda e: e.func(sp.S.Zero, *e.args[1:]))

    # ------------------------------------------------------------------ second order
    @property
    def second_input(self) -> sp.Expr:
        """The second variable of the Hessian: ``z[j]`` on a class axis, else the input."""
        z = self.input
        if isinstance(z, sp.Indexed):
            return z.base[HESSIAN_INDEX]
        return z

    @cached_property
    def raw_hessian(self) -> sp.Expr:
        """``sympy.diff`` of :attr:`raw_gradient` with respect to :attr:`second_input`."""
        return sp.diff(self.raw_gradient, self.second_input)

    @cached_property
    def hessian(self) -> sp.Expr:
        """∂²ℓ/∂input² per element (∂²ℓ/∂zᵢ∂zⱼ on a class axis), derived and simplified.

        Dirac deltas at kinks are dropped: this is the second derivative almost everywhere,
        which is what autograd's double backward returns.

        >>> import symloss
        >>> symloss.derive("bce").hessian
        (1 - sigmoid(z))*sigmoid(z)
        """
        dropped = drop_distributions(self.raw_hessian)
        # tidy() expands; for a long product (the focal loss) that is longer than what it
        # started from, so the shorter of the two is kept (SymPy's own measure, count_ops).
        return min((tidy(dropped), dropped), key=sp.count_ops)

    @property
    def canonical_hessian(self) -> sp.Expr | None:
        """The declared closed form of the Hessian, if the loss declares one."""
        return self.declaration.canonical_hessian

    @cached_property
    def hessian_proved(self) -> bool:
        """True only when SymPy reduces ``hessian - canonical_hessian`` to 0.

        False when the loss declares no closed form for its Hessian (then the Hessian is
        derived and simplified, but there is nothing it is proved equal to).
        """
        if self.canonical_hessian is None:
            return False
        return self._prove(self.hessian, self.canonical_hessian)

    @cached_property
    def kernel_hessian(self) -> sp.Expr:
        """The form of the Hessian the NumPy kernel evaluates (proved equal to the Hessian)."""
        declared = self.declaration.stable_hessian
        return drop_distributions(self.raw_hessian) if declared is None else declared

    @cached_property
    def kernel_hessian_proved(self) -> bool:
        return self._prove(self.kernel_hessian, drop_distributions(self.raw_hessian))

    @cached_property
    def hvp_expr(self) -> sp.Expr:
        """The per-sample Hessian-vector product: ``Σⱼ Hᵢⱼ vⱼ`` on a class axis, ``h v`` else.

        Written with the kernel's Hessian and the direction ``v`` (an IndexedBase on a class
        axis), sums over the class index reduced by :func:`~symloss.algebra.reduce_sums`.
        """
        if self.declaration.stable_hvp is not None:
            return self.declaration.stable_hvp
        return self._formed_hvp

    @cached_property
    def kernel_hvp_proved(self) -> bool:
        """True when the evaluated HVP form is proved equal to the one formed from the Hessian
        (``Σⱼ Hᵢⱼ vⱼ`` as written: the proofs reduce its sums themselves, after the changes of
        variables a p-norm's proof makes -- :attr:`_formed_hvp` has multiplied
        ``(aₖ − pₖ + ε)²`` out into six sums per distance, 0.5 MB at p = 3)."""
        return self._prove(self.hvp_expr, self._hessian_times_v)

    @cached_property
    def _hessian_times_v(self) -> sp.Expr:
        """``Σⱼ Hᵢⱼ vⱼ`` with the kernel's Hessian, its sums not reduced (``h v`` for one
        element)."""
        h = self.kernel_hessian
        if isinstance(self.input, sp.Indexed):
            v = sp.IndexedBase("v")
            fresh = sp.Symbol("m", integer=True, positive=True)
            return sp.Sum(h.subs(HESSIAN_INDEX, fresh) * v[fresh], (fresh, 1, _class_count(self)))
        return h * sp.Symbol("v", real=True)

    @cached_property
    def _formed_hvp(self) -> sp.Expr:
        h = self._hessian_times_v
        if isinstance(h, sp.Sum):
            return reduce_sums(sp.Sum(expand_products(h.function), *h.limits))
        k = self.kernel_hessian
        if isinstance(k, accurate):
            return accurate(k.args[0] * sp.Symbol("v", real=True))
        return h

    @cached_property
    def hessian_diagonal(self) -> sp.Expr:
        """∂²ℓ/∂zᵢ² (the kernel's form): what gradient-boosting libraries take as ``hess``."""
        h = self.kernel_hessian
        if isinstance(self.input, sp.Indexed):
            return h.subs(HESSIAN_INDEX, self.input.indices[0])
        return h

    @cached_property
    def hessian_steps(self) -> list[Step]:
        """The derivation of the second derivative, each step produced and checked by SymPy."""
        d = self.declaration
        ell = _ELL
        z, z2 = self.input, self.second_input
        steps: list[Step] = [
            Step(
                Phrase("title.gradient"),
                Phrase("why.first_derivative"),
                Partial(ell, z),
                _chain([self.raw_gradient, self.gradient]),
                equal(self.raw_gradient, self.gradient),
            )
        ]
        second = Partial(ell, z, 2) if z2 == z else _Mixed(ell, z, z2)
        raw = self.raw_hessian
        dropped = drop_distributions(raw)
        key = "why.second" + ("_class" if z2 != z else "") + ("_dirac" if dropped != raw else "")
        why = Phrase(key, z2=str(z2)) if z2 != z else Phrase(key)
        steps.append(
            Step(
                Phrase("title.second_derivative"),
                why,
                second,
                _chain([raw, dropped, self.hessian]),
                equal(dropped, self.hessian),
            )
        )
        if self.canonical_hessian is not None:
            hwhy = d.hessian_why
            steps.append(
                Step(
                    Phrase("title.closed_form"),
                    hwhy,
                    second,
                    _chain([self.hessian, self.canonical_hessian]),
                    self.hessian_proved,
                )
            )
        else:
            steps.append(
                Step(
                    Phrase("title.closed_form"),
                    Phrase("why.no_closed_form"),
                    second,
                    (self.hessian,),
                    None,
                )
            )
        if d.stable_hessian is not None:
            steps.append(
                Step(
                    Phrase("title.evaluated"),
                    d.stable_hessian_why or Phrase("why.kernel_form"),
                    second,
                    (self.kernel_hessian,),
                    self.kernel_hessian_proved,
                )
            )
        steps += self._kink_steps(order=2)
        steps.append(self._hvp_step())
        return steps

    def _hvp_step(self) -> Step:
        z = self.input
        reduction = self.options.get("reduction", "mean")
        denominator = (
            self.declaration.mean_denominator
            if reduction in ("mean", "batchmean") else sp.S.One
        )
        hv = sp.Symbol("(Hv)")
        if isinstance(z, sp.Indexed):
            v = sp.IndexedBase("v")
            m = sp.Symbol("m", integer=True, positive=True)
            body = self.hessian.subs(HESSIAN_INDEX, m) * v[m]
            contraction = sp.Sum(body, (m, 1, _class_count(self)))
            reduced = tidy(contraction)
            checked = is_zero(contraction - reduced)
            kind = "why.hvp_class_"
            chain = [contraction, reduced]
        else:
            v = sp.Symbol("v", real=True)
            chain = [self.hessian * v]
            checked = True
            kind = "why.hvp_"
        why = Phrase(kind + ("mean" if reduction in ("mean", "batchmean") else reduction))
        return Step(
            Phrase("title.hvp"),
            why,
            hv,
            _chain([c / denominator for c in chain]),
            checked,
        )

    # ------------------------------------------------------------------ rendering
    def latex(self, document: bool = False, order: int = 1, lang: str = "en") -> str:
        """The derivation as an ``align*`` body, or a complete document pdflatex compiles
        (``lang="zh"``: in Chinese, a ctex document xelatex compiles).

        ``order=2`` renders the derivation of the second derivative (:attr:`hessian_steps`).
        """
        from .render import latex
        from .words import check_lang

        return latex(self, document=document, order=order, lang=check_lang(lang))

    def markdown(
        self, order: int = 1, heading: str = "#", lang: str = "en", math: str = "github"
    ) -> str:
        """The derivation as Markdown with ``$$`` math (title at ``heading``).

        ``math="github"`` (the files in derivations/) may write a one-row headline in GitHub's
        inline ``$`…`$``; ``math="portable"`` uses only ``$$…$$``, which Jupyter, nbconvert and
        GitHub all render (what a notebook displays).
        """
        from .render import markdown
        from .words import check_lang

        return markdown(self, order=order, heading=heading, lang=check_lang(lang), math=math)

    def text(self, order: int = 1, lang: str = "en", width: int | None = None) -> str:
        """The derivation as Unicode text for a terminal (``lang="zh"``: in Chinese), wrapped
        to ``width`` columns (default: ``COLUMNS`` or the terminal's width)."""
        from .render import text
        from .words import check_lang

        return text(self, order=order, lang=check_lang(lang), width=width)

    def example(self, *arrays: Any, digits: int = 4) -> Any:
        """A worked example: every step of the derivation with its numbers beside its symbols.

        Args:
            *arrays: the loss's positional arrays in torch's order (``input, target``, ...).
            digits: decimals shown.

        Returns:
            A :class:`symloss.example.Example` with ``.text()``, ``.markdown()``, ``.latex()``
            (each takes ``lang=``) and notebook display.

        >>> import symloss
        >>> ex = symloss.derive("bce").example([-1.7723, -1.5965, 0.8863], [0, 1, 0])
        >>> ex.value("Reduction")
        '1.0565'
        """
        from .example import Example

        return Example(self, arrays, digits=digits)

    def _repr_latex_(self) -> str:
        from .render import latex

        return "$$" + latex(self, document=False, environment=True) + "$$"

    def _repr_markdown_(self) -> str:
        # Jupyter, nbconvert (MathJax 3) and GitHub all render $…$ / $$…$$; GitHub's own
        # $`…`$ shows stray quote marks elsewhere, so it stays in derivations/*.md only.
        return self.markdown(math="portable")

    # ------------------------------------------------------------------ numbers
    @cached_property
    def _numeric(self) -> Any:
        from .evaluate import build

        return build(self)

    @cached_property
    def loss_fn(self) -> Callable[..., Any]:
        """``loss_fn(input, target, ...)``: the reduced loss, with torch's semantics, in NumPy.

        The arrays are torch's positional arguments (``spec.torch_arguments``); NumPy arrays or
        torch tensors on any device (detached and moved to the CPU; the result is NumPy).
        """
        loss = self._numeric.loss

        def loss_fn(*arrays: Any) -> Any:
            return loss(*_numpy_arrays(arrays))

        return loss_fn

    @cached_property
    def grad_fn(self) -> Callable[..., Any]:
        """``grad_fn(input, target, ..., wrt="input")``: ∂(reduced loss)/∂(array ``wrt``), in
        that array's shape and dtype.

        The arrays are torch's positional arguments (``spec.torch_arguments``), NumPy or torch
        tensors (any device; the result is NumPy). ``wrt`` is torch's name of a differentiable
        array: ``"var"`` of ``gaussian_nll_loss``, ``"input1"`` or ``"input2"`` of
        ``margin_ranking_loss``.

        >>> import numpy as np, symloss
        >>> d = symloss.derive("margin_ranking_loss", reduction="sum")
        >>> d.grad_fn(np.array([0.0]), np.array([1.0]), np.array([1.0]), wrt="input2")
        array([1.])
        """
        grad = self._numeric.grad
        # torch's name of each differentiable array -> its kernel key (worked out once)
        keys = {arg.name: arg.symbol_key
                for arg in self.spec.arguments_for(self.options) if arg.differentiable}

        def grad_fn(*arrays: Any, wrt: str = "input") -> Any:
            if wrt == "input":
                return grad(*_numpy_arrays(arrays))
            return grad(*_numpy_arrays(arrays), wrt=keys.get(wrt, wrt))

        return grad_fn

    @cached_property
    def hvp_fn(self) -> Callable[..., Any]:
        """``hvp_fn(input, target, v)``: the Hessian of the reduced loss times ``v``.

        The Hessian is with respect to the input; the result has the input's shape and dtype
        and equals ``torch.autograd.functional.hvp`` of torch's reduced loss. Tensors are
        accepted as for :attr:`grad_fn`.

        >>> import numpy as np, symloss
        >>> d = symloss.derive("bce", reduction="sum")
        >>> d.hvp_fn(np.array([0.0]), np.array([1.0]), np.array([2.0]))
        array([0.5])
        """
        hvp = self._numeric.hvp

        def hvp_fn(*arrays: Any) -> Any:
            return hvp(*_numpy_arrays(arrays))

        return hvp_fn

    @property
    def hess_diag_fn(self) -> Callable[..., Any]:
        """``hess_diag_fn(input, target)``: ∂²ℓ/∂zᵢ² per element, unreduced: the Hessian's
        diagonal (:attr:`hessian_diagonal`), the input's shape and dtype. It is the ``hess``
        of a gradient-boosting objective (:func:`symloss.objective`).

        >>> import numpy as np, symloss
        >>> symloss.derive("bce_with_logits").hess_diag_fn(np.array([0.0]), np.array([1.0]))
        array([0.25])
        """
        return self._numeric.hess_diag  # type: ignore[no-any-return]

    def steps_for(self, order: int) -> list[Step]:
        """:attr:`steps` for ``order=1``, :attr:`hessian_steps` for ``order=2``."""
        if order == 1:
            return self.steps
        if order == 2:
            return self.hessian_steps
        from .errors import choice_error

        raise choice_error("derivative order", order, (1, 2))
