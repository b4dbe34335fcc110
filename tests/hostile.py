"""Hypothesis strategies for hostile inputs and the checks every entry point must pass on them.

Shared by test_robustness.py (processor parts), test_robustness_files.py (readers and converters' parsers) and
test_robustness_pipeline.py. The contract checked: an entry point given anything either returns a result that
satisfies its documented invariants, or raises ValueError / TypeError whose message names the problem. Any other
exception type, a hang (per-example deadline) or a wrong-shaped result fails the test.
"""

import contextlib
import math
import re

import numpy as np
import torch
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# Reproducible in CI: the same examples every run, no example database on disk. The deadline catches a hang, not
# slowness: one pipeline example (generate() included) took 2.2 s with four processes sharing the 2 cores.
settings.register_profile(
    "robustness", max_examples=500, deadline=10_000, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
ROBUST = settings.get_profile("robustness")

# Joint counts of the registered layouts (and neighbours, which no layout has).
JOINT_COUNTS = (0, 1, 2, 14, 15, 16, 17, 18, 19, 20, 25, 26, 27)
# Values a coordinate may hold: ordinary, zero, tiny, huge (1e30 fits float32, 1e39 does not), non-finite.
SPECIAL_FLOATS = (0.0, -0.0, 1e-300, 5e-324, 1e30, -1e30, 1e39, 1e300, -1e300, float("nan"), float("inf"),
                  float("-inf"))


def mostly(valid, invalid, weight=3):
    """Values of ``valid`` about ``weight`` times as often as values of ``invalid``: enough well-formed arguments
    that the entry point gets past argument checks to the data."""
    return st.one_of(*([st.sampled_from(tuple(valid))] * weight), st.sampled_from(tuple(invalid)))


def floats_with_specials():
    return st.one_of(st.floats(-10.0, 10.0, allow_nan=False, width=32), st.sampled_from(SPECIAL_FLOATS))


@st.composite
def shapes(draw, min_rank=0, max_rank=6):
    """Shapes of every rank, biased towards pose-like (M, T, J, C) with small T and M."""
    rank = draw(st.integers(min_rank, max_rank))
    dims = []
    for axis in range(rank):
        if axis == rank - 1:
            dims.append(draw(st.sampled_from((0, 1, 2, 3, 4, 5))))  # channels
        elif axis == rank - 2:
            dims.append(draw(st.sampled_from(JOINT_COUNTS)))
        else:
            dims.append(draw(st.integers(0, 3)))
    return tuple(dims)


def numeric_arrays(shape_strategy=None, elements=None):
    """Arrays of any numeric dtype (floats with NaN/inf/huge values, ints, bools, complex)."""
    shape_strategy = shapes() if shape_strategy is None else shape_strategy

    def build(dtype):
        if dtype.kind == "f":
            el = elements if elements is not None else floats_with_specials()
            return hnp.arrays(np.float64, shape_strategy, elements=el).map(lambda a: _cast(a, dtype))
        if dtype.kind == "c":
            return hnp.arrays(dtype, shape_strategy, elements=st.complex_numbers(max_magnitude=10, allow_nan=False,
                                                                                 width=64))
        return hnp.arrays(dtype, shape_strategy)

    dtypes = st.sampled_from([np.dtype(t) for t in ("float32", "float64", "float16", "int64", "int8", "uint8", "bool",
                                                    "complex64")])
    return dtypes.flatmap(build)


def _cast(array, dtype):
    with np.errstate(over="ignore", invalid="ignore"):
        return array.astype(dtype)


def non_numeric_arrays():
    """Arrays of strings, bytes, objects, datetimes: never pose data."""
    small = shapes(max_rank=4).filter(lambda s: int(np.prod(s)) <= 64)
    return st.one_of(
        hnp.arrays(np.dtype("U3"), small, elements=st.text(st.characters(codec="ascii", exclude_characters="\x00"),
                                                            max_size=3)),
        hnp.arrays(np.dtype("S3"), small),
        hnp.arrays(np.dtype("M8[s]"), small),
        small.map(lambda s: np.full(s, None, dtype=object)),
        small.map(lambda s: np.full(s, "x", dtype=object)),
        small.map(lambda s: _object_array_of_lists(s)),
    )


def _object_array_of_lists(shape):
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        out[index] = [1.0, 2.0]
    return out


def ragged_lists():
    """Nested lists whose rows differ in length or mix types."""
    leaf = st.one_of(st.floats(-5, 5, allow_nan=False), st.integers(-5, 5), st.just("a"), st.none(), st.just([]))
    return st.recursive(st.lists(leaf, max_size=4), lambda inner: st.lists(inner, min_size=1, max_size=3),
                        max_leaves=24)


def junk_objects():
    return st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=8), st.binary(max_size=8),
                     st.just({}), st.just({"a": 1}), st.just(set()), st.just(object()), st.just(b"\x00\xff"),
                     st.just(()), st.just([]), st.just([[]]), st.just(Ellipsis), st.complex_numbers())


def pose_like_inputs():
    """Anything a caller could hand a pose entry point as one sample or a batch."""
    arrays = st.one_of(numeric_arrays(), non_numeric_arrays())
    return st.one_of(
        valid_poses(), valid_poses(), valid_poses().map(lambda a: [a, a[..., :1, :, :] if a.ndim == 4 else a[:1]]),
        arrays,
        arrays.map(lambda a: torch.from_numpy(a) if a.dtype.kind in "fiub" and a.dtype != np.uint16 else a),
        arrays.map(lambda a: a.tolist()),
        ragged_lists(),
        junk_objects(),
        st.lists(arrays, min_size=1, max_size=3),
    )


@st.composite
def valid_poses(draw, num_joints=(25, 18, 20, 15, 26), channels=(2, 3, 4), max_frames=5, max_persons=3):
    """Well-formed (M, T, J, C) / (T, J, C) pose arrays (may still be degenerate: all zero, coinciding joints)."""
    joints = draw(st.sampled_from(num_joints))
    c = draw(st.sampled_from(channels))
    t = draw(st.integers(1, max_frames))
    m = draw(st.integers(1, max_persons))
    if draw(st.booleans()):  # hypothesis' own arrays: many zeros and repeated values (degenerate edge cases)
        values = draw(hnp.arrays(np.float64, (m, t, joints, c), elements=st.floats(-3.0, 3.0, width=32)))
    else:  # a random body-sized pose at a random scale (mm, m, px), some persons or frames absent (zeros)
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        values = rng.normal(0.0, 1.0, (m, t, joints, c)) * draw(st.sampled_from((1e-3, 1.0, 300.0, 1e4)))
        values[rng.random((m, t)) < 0.2] = 0.0
    if c == 4 or (c == 3 and draw(st.booleans())):  # a confidence channel in [0, 1]
        values[..., -1] = np.clip(np.abs(values[..., -1]) / 3.0, 0.0, 1.0)
    if draw(st.booleans()):
        values = values[0]
    return values.astype(draw(st.sampled_from((np.float32, np.float64))))


# --------------------------------------------------------------------------------------------------- the checks
def check_error(error, keywords, where=""):
    """``error`` is a ValueError/TypeError whose message is non-empty and names the problem (one of ``keywords``)."""
    assert isinstance(error, (ValueError, TypeError)), f"{where}: {type(error).__name__} escaped: {error!r}"
    message = str(error)
    assert message.strip(), f"{where}: {type(error).__name__} with an empty message"
    pattern = "|".join(re.escape(k) for k in keywords)
    assert re.search(pattern, message, flags=re.IGNORECASE), (
        f"{where}: the message does not name the problem (none of {sorted(keywords)}): {message!r}"
    )


@contextlib.contextmanager
def clear_error_or_result(keywords, where=""):
    """``with clear_error_or_result(...) as outcome: outcome.value = entry_point(...)``: an exception raised in the
    block must be a ValueError/TypeError naming the problem; ``outcome.error`` holds it (None on success)."""
    outcome = _Outcome()
    try:
        yield outcome
    except (KeyboardInterrupt, SystemExit, AssertionError):
        raise
    except BaseException as error:  # noqa: BLE001 - the point is to see every escaping type
        check_error(error, keywords, where)
        outcome.error = error
        # --hypothesis-show-statistics lists how often each outcome (error type and message start) occurred.
        event(f"{type(error).__name__}: {str(error)[:70]}")
    else:
        event("result")


class _Outcome:
    value = None
    error = None


def is_finite_float32(array) -> bool:
    array = np.asarray(array)
    return array.dtype == np.float32 and bool(np.isfinite(array).all())


def integer_like(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) or (
        isinstance(value, float) and math.isfinite(value) and value.is_integer())
