"""The checker's battery for the row family (``cosine_embedding_loss``, ``triplet_margin_loss``,
``multilabel_margin_loss``, ...): inputs read from the declaration.

Every row layout torch takes, every target of the declared domain (both labels ±1; class-index
lists with repeats, −1 padding and ignored entries), rows scaled to 10⁻⁶ and 10⁶, and rows
placed exactly on each declared kink (bisection on the compiled hinge argument), with the exact
one-sided derivatives there. The testing layer: it evaluates through :mod:`symloss.rows` and
makes :class:`~symloss.cases.Case` s; :mod:`symloss.testing` registers it as the ``"rows"``
family.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp

from .cases import Case
from .declaration import CLASS_INDEX_SETS, SIGNS
from .errors import SymlossValueError
from .hinges import hinge, step
from .rows import RowAdapter, compile_rows
from .spec import LossSpec

if TYPE_CHECKING:
    from .derive import Derivation

__all__ = ["battery_cases", "battery_ray", "battery_sides", "battery_target_at"]


# --------------------------------------------------------------------------- the checker's battery
#: The row width of the battery's cases (features or classes).
_WIDTH = 5


def _row_shapes(spec: LossSpec) -> list[tuple[int, ...]]:
    allowed = getattr(spec, "row_dims", None)
    shapes: list[tuple[int, ...]] = []
    if allowed is None or 0 in allowed:
        shapes.append((_WIDTH,))  # one row, unbatched
    shapes.append((4, _WIDTH))
    if allowed is None:
        shapes.append((2, 3, _WIDTH))
    return shapes


def _index_lists(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Per row, class indices then −1: repeats, an empty list, a full one, and entries after
    the first −1 (which torch ignores)."""
    width = shape[-1]
    rows = np.full((int(np.prod(shape[:-1])), width), -1, dtype=np.int64)
    for r in range(rows.shape[0]):
        kind = r % 4
        if kind == 0 and rows.shape[0] > 1:
            rows[r, 1:] = rng.integers(-1, width, size=width - 1)  # empty list, junk after −1
            continue
        count = width if kind == 3 else int(rng.integers(1, width))
        rows[r, :count] = rng.integers(0, width, size=count)  # repeats allowed
        if count < width - 1:
            rows[r, count + 1:] = rng.integers(-1, width, size=width - count - 1)
    return rows.reshape(shape)


def _target_draws(
    spec: LossSpec, options: Mapping[str, Any], rng: np.random.Generator, shape: tuple[int, ...]
) -> list[tuple[str, np.ndarray | None]]:
    """(label, target) pairs covering the declared target domain, ``None`` without a target."""
    domains = spec.target_domains(options)
    if not domains:
        return [("", None)]
    name = domains[0].name
    rows = shape[:-1]
    if name == SIGNS.name:
        if not rows:  # one row: each label in turn
            return [(f"target {v:g}", np.array(v)) for v in (1.0, -1.0)]
        signs = np.where(np.arange(int(np.prod(rows))) % 2 == 0, 1.0, -1.0)
        return [("targets ±1", rng.permutation(signs).reshape(rows))]
    if name == CLASS_INDEX_SETS.name:
        return [("sets of class indices (repeats, -1 padding, entries after it)",
                 _index_lists(rng, shape))]
    raise AssertionError(f"{spec.name}: no battery for target domain {name!r}")  # pragma: no cover


def battery_cases(derivation: Derivation, rng: np.random.Generator, dtype: str, domain: Any) -> Any:
    """The row family's battery: every row layout torch takes, every target of the declared
    domain (both labels ±1; index lists with repeats, padding and ignored entries), typical
    rows and rows scaled to 10⁻⁶ and 10⁶ (where ``eps`` and the norms' rounding matter)."""
    spec = derivation.spec
    args = spec.arguments_for(derivation.options)
    lo, hi = domain

    def case(label: str, arrays: dict[str, np.ndarray], target: Any, extreme: bool = False) -> Any:
        others = tuple(
            (a.name, arrays[a.symbol_key]) for a in args if a.symbol_key not in ("input", "target")
        )
        t = np.zeros(0, dtype=dtype) if target is None else target
        if target is not None and t.dtype.kind == "f":
            t = t.astype(dtype)
        return Case(label, arrays["input"], t, dtype, extreme=extreme, others=others)

    for shape in _row_shapes(spec):
        arrays = {
            a.symbol_key: np.clip(2.0 * rng.standard_normal(shape), lo, hi).astype(dtype)
            for a in args if a.symbol_key != "target"
        }
        for label, target in _target_draws(spec, derivation.options, rng, shape):
            yield case(f"{shape} {label}".strip(), arrays, target)
    shape = (4, _WIDTH)
    for scale in (1e-6, 1e6):
        arrays = {
            a.symbol_key: np.clip(scale * rng.standard_normal(shape), lo, hi).astype(dtype)
            for a in args if a.symbol_key != "target"
        }
        for label, target in _target_draws(spec, derivation.options, rng, shape):
            yield case(f"{shape} rows of size {scale:g} {label}".strip(), arrays, target, True)
    yield from _kink_cases(derivation, rng, dtype)


def _kink_cases(derivation: Derivation, rng: np.random.Generator, dtype: str) -> Any:
    """Rows on each declared kink: for a hinge of one number per row, ``max(0, u)``, the input
    row is moved along a random direction to the root of ``u`` (bisection on the compiled
    ``u``), the target set as the kink says (``y = −1``); a hinge over pairs of classes is not
    laid out."""
    d = derivation.declaration
    spec = derivation.spec
    args = spec.arguments_for(derivation.options)
    hinges = [h.args[0] for h in d.loss.atoms(hinge)]
    if len(hinges) != 1:
        return
    u = d.substitute_definitions(hinges[0])
    if any(not e.free_symbols.isdisjoint({s for s in e.indices}) for e in u.atoms(sp.Indexed)
           if not _bound(e, u)):
        return  # a hinge per pair of classes: no single number per row
    adapter = RowAdapter(derivation)
    kernel = compile_rows(u, adapter.symbols, None)
    target_symbol = d.symbols.get("target")
    shape = (4, _WIDTH)
    for number, kink in enumerate(d.kinks, 1):
        label = next((v for sym, v in kink.at if sym == target_symbol), None)
        arrays = {a.symbol_key: rng.standard_normal(shape) for a in args if a.symbol_key != "target"}
        target = None if target_symbol is None else np.full(shape[:-1], float(label or 0))
        vectors = [k for k in arrays]  # the input first
        grid = np.concatenate([-np.geomspace(1e3, 1e-2, 41), [0.0], np.geomspace(1e-2, 1e3, 41)])

        def u_at(
            key: str, t: np.ndarray, direction: np.ndarray,
            arrays: dict[str, np.ndarray] = arrays, target: np.ndarray | None = target,
        ) -> np.ndarray:
            moved = {**arrays, key: arrays[key] + t[:, None] * direction}
            given = [moved[a.symbol_key] if a.symbol_key != "target" else target for a in args]
            prep = adapter.prepare(*given)
            return np.asarray(kernel(prep.values, prep.rows, prep.width), dtype=np.float64)

        # Move one array's rows along a line until u changes sign: first toward the other
        # arrays and their differences (b for a cosine, n − p for a triplet: along those u
        # sweeps its range), then at random; the input first, then the others (with swap, a
        # triplet's kink is reached by moving the negative).
        placed = False
        for key in vectors:
            rest = [v for k, v in arrays.items() if k != key]
            toward = [*rest, *(x - y for n, x in enumerate(rest) for y in rest[n + 1:])]
            found = np.zeros(shape[0], dtype=bool)
            direction = np.zeros(shape)
            lo_t, hi_t = np.zeros(shape[0]), np.zeros(shape[0])
            for trial in [*toward, *(rng.standard_normal(shape) for _ in range(8))]:
                signs = np.array([np.sign(u_at(key, np.full(shape[0], t), trial)) for t in grid])
                cross = signs[:-1] * signs[1:] <= 0
                ok = cross.any(axis=0) & ~found
                first = np.argmax(cross, axis=0)
                direction[ok], lo_t[ok], hi_t[ok] = trial[ok], grid[first][ok], grid[first + 1][ok]
                found |= ok
                if found[:2].all():
                    break
            if not found[:2].all():
                continue
            u_lo = u_at(key, lo_t, direction)
            for _ in range(80):
                mid = (lo_t + hi_t) / 2
                same = np.sign(u_at(key, mid, direction)) == np.sign(u_lo)
                lo_t, hi_t = np.where(same, mid, lo_t), np.where(same, hi_t, mid)
            arrays[key] = arrays[key] + lo_t[:, None] * direction
            placed = True
            break
        if not placed:
            continue  # the hinge never reaches 0 near these rows (a margin out of reach)
        # the last two rows stay off the kink (the other label): a loss of ordinary size
        on = np.arange(shape[0]) < 2
        arrays["input"] = np.where(on[:, None], arrays["input"], rng.standard_normal(shape))
        if target is not None:
            target = np.where(on, target, -target)
        others = tuple((a.name, arrays[a.symbol_key].astype(dtype)) for a in args
                       if a.symbol_key not in ("input", "target"))
        where = ", ".join(f"{sym} = {sp.sstr(v)}" for sym, v in kink.at)
        yield Case(f"{shape} on kink {number}: {where}", arrays["input"].astype(dtype),
                   np.zeros(0, dtype=dtype) if target is None else target.astype(dtype), dtype,
                   others=others, on_kink=np.broadcast_to(on[:, None], shape).copy(), kink=number)


def battery_sides(derivation: Derivation, case: Any, wrt: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The one-sided derivatives at a row's kink, exactly: each gradient with the kink's step
    set to 0 (the hinge inactive) and to 1 (active), on the rows the case puts on the kink.

    Moving the input a little to each side (the element-wise losses' way) would change a
    row loss's gradient itself, which is not piecewise constant (a cosine, a distance).
    """
    d = derivation.declaration
    cache = derivation.__dict__.setdefault("_row_sides", {})
    arrays = case.arrays(derivation.spec)
    adapter = RowAdapter(derivation)
    prep = adapter.prepare(*arrays)
    rows_on = np.asarray(np.asarray(case.on_kink).reshape((*prep.rows, prep.width)).any(axis=-1))
    (u,) = [h.args[0] for h in d.loss.atoms(hinge)]
    denominator = np.float64(adapter._denominator(prep.rows))
    sides: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    for _, key in wrt:
        with np.errstate(all="ignore"):
            normal = np.asarray(derivation.grad_fn(*arrays, wrt=key), dtype=np.float64)
        for side, value in enumerate((sp.S.Zero, sp.S.One)):
            if (key, side) not in cache:
                raw = d.loss.diff(derivation.wrt_variable(key))
                forced = raw.replace(
                    lambda e: isinstance(e, step) and e.args[0] == u,
                    lambda e, value=value: value,
                )
                cache[key, side] = compile_rows(
                    d.substitute_definitions(forced), adapter.symbols, adapter.index
                )
            one = cache[key, side](prep.values, prep.rows, prep.width) / denominator
            sides[side].append(np.where(rows_on[..., None], np.asarray(one, dtype=np.float64), normal))
    return sides


def _bound(element: sp.Indexed, expr: sp.Expr) -> bool:
    """Whether every index of ``element`` is a summation index somewhere in ``expr``."""
    bound = {limit[0] for total in expr.atoms(sp.Sum) for limit in total.limits}
    return set(element.indices) <= bound


def battery_ray(derivation: Derivation, t: np.ndarray, dtype: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """For the stability map of a two-array row loss: row r is ``(t[r], 0, …, 0)`` and its
    target the first (then the second) class alone."""
    spec = derivation.spec
    if len(spec.arguments) != 2:
        raise SymlossValueError(
            f"{derivation.name}: the stability map moves the input of a two-array loss; "
            f"{derivation.name} takes {', '.join(spec.torch_arguments)}"
        )
    x = np.zeros((t.size, _WIDTH), dtype=dtype)
    x[:, 0] = t
    out = []
    for cls in (0, 1):
        target = np.full((t.size, _WIDTH), -1, dtype=np.int64)
        target[:, 0] = cls
        out.append((f"x = (t, 0, …), target class {cls}", x, target))
    return out


def battery_target_at(case: Any, index: tuple[int, ...]) -> Any:
    """The target of the row holding the element at ``index`` (a label, or its index list)."""
    target = np.asarray(case.target)
    if target.size == 0:
        return None
    row = index[: np.ndim(case.input) - 1]
    value = target[row]  # a label (0-d) or the row's index list
    return value.tolist() if np.ndim(value) else float(value)
