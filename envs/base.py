"""Task API shared by every metarl environment family.

A *task* is a small JSON-able dict (plain Python floats, ints and nested lists), e.g.
``{"velocity": 1.3}``. Every family declares its task parameters as :class:`TaskParam` rows with
two ranges:

* the **sampling range** (``low``/``high`` or ``choices``): the training distribution that
  :meth:`TaskEnvMixin.sample_tasks` draws from (the MAML paper's ranges for its families);
* the **valid range** (``valid_low``/``valid_high``): what :meth:`TaskEnvMixin.set_task` accepts.
  It is wider, so out-of-distribution variants (``velocity=2.5`` for a [0, 2] training range) can
  be used for adaptation; only nonsense (unknown key, wrong type or shape, NaN/inf, a value
  outside the hard validity range such as a negative mass) raises ``ValueError``.

:meth:`TaskEnvMixin.set_task_range` (or the ``task_range`` keyword of ``gymnasium.make`` /
``make_vec`` on every ``metarl/`` id, e.g. ``task_range={"velocity": [0, 3]}``) replaces the
sampling range of some parameters for one instance, within their valid ranges: a different
training distribution (another paper's ranges, or a narrow one to test adaptation outside it).

:meth:`TaskEnvMixin.complete_task` makes a whole task from some of its parameters (the others
take their ``nominal`` value, the unmodified env's; a number fills a vector parameter), which is
how ``metarl adapt --task gravity=30`` names a dynamics variant.

Without a task set by :meth:`set_task` (or ``reset(options={"task": ...})``), an environment draws
a fresh task from its own ``np_random`` at each reset, so it is an ordinary MDP.

Version history: v0, first version.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class TaskParam:
    """One task parameter of a family.

    ``shape`` is ``()`` for a scalar, a tuple for a fixed-size vector, or ``None`` when the size
    depends on the instance (then the env's :meth:`TaskEnvMixin.task_shapes` gives it).
    ``choices`` (if set) replaces uniform sampling in [low, high]; ``radius`` (if set, for a
    parameter of shape ``(2,)``) draws it uniformly from the disk of that radius about the origin
    instead of the square.
    """

    name: str
    low: float
    high: float
    valid_low: float = -math.inf
    valid_high: float = math.inf
    shape: tuple[int, ...] | None = ()
    choices: tuple[float, ...] | None = None
    integer: bool = False
    doc: str = ""
    #: the value of the unmodified env (dynamics families), which :meth:`TaskEnvMixin.complete_task`
    #: fills in for a parameter left out; None where there is none (goals, velocities)
    nominal: float | None = None
    radius: float | None = None

    def describe(self) -> str:
        """Short text for tables: sampling range and valid range."""
        samp = _sampling_text(self)
        shape = (
            "" if self.shape == () else ("[...]" if self.shape is None else f"{list(self.shape)}")
        )
        return f"{self.name}{shape} ~ {samp} (valid [{self.valid_low:g}, {self.valid_high:g}])"


def _to_python(x: Any) -> Any:
    """Numpy arrays/scalars -> plain Python floats/ints/lists."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (list, tuple)):
        return [_to_python(v) for v in x]
    return x


class TaskEnvMixin:
    """Mixin giving the task API. Put it *before* the Gymnasium base class.

    Class-level metadata used by the CLI table (:func:`envs.registry.describe_families`):
    ``task_kind`` ("goal" or "dynamics"), ``task_params`` (tuple of :class:`TaskParam`),
    ``horizon`` (the registered ``max_episode_steps``).

    Subclasses implement :meth:`_apply_task` (push the task into the simulator/reward) and call
    :meth:`_prepare_reset` at the start of ``reset``.
    """

    task_kind: ClassVar[str] = "goal"
    task_params: ClassVar[tuple[TaskParam, ...]] = ()
    horizon: ClassVar[int] = 100

    _task: dict | None = None
    _task_fixed: bool = False
    #: this instance's sampling ranges where :meth:`set_task_range` changed them
    _sampling_overrides: dict[str, TaskParam] | None = None

    # ------------------------------------------------------------------ shapes and sampling
    def task_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each task parameter for this instance."""
        out = {}
        for p in self.task_params:
            if p.shape is None:
                raise NotImplementedError(f"{type(self).__name__} must define task_shapes()")
            out[p.name] = p.shape
        return out

    def sample_tasks(self, n: int, rng: np.random.Generator | None = None) -> list[dict]:
        """Draw ``n`` tasks from the training distribution with ``rng`` (default ``np_random``)."""
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        rng = self.np_random if rng is None else rng
        return [self._sample_task(rng) for _ in range(int(n))]

    def sampling_params(self) -> tuple[TaskParam, ...]:
        """``task_params`` with this instance's sampling ranges (see :meth:`set_task_range`)."""
        return tuple(self._sampling_param(p) for p in self.task_params)

    def _sampling_param(self, p: TaskParam) -> TaskParam:
        return (self._sampling_overrides or {}).get(p.name, p)

    def set_task_range(self, ranges: Mapping[str, Any]) -> None:
        """Draw the named parameters from other ranges from now on: ``{name: [low, high]}``
        (uniform; ``low == high`` fixes the value), for a parameter drawn from choices
        (``direction``) ``{name: [c1, c2, ...]}``, and for a 2-vector (``goal``) also
        ``{name: {"radius": r}}`` (uniform on the disk of radius ``r`` about the origin). Each
        bound must lie in the parameter's valid range; parameters left out keep their ranges.
        Raises ``ValueError`` naming the problem."""
        name = type(self).__name__
        if type(self)._sample_task is not TaskEnvMixin._sample_task:
            raise ValueError(f"{name} draws its tasks its own way; task_range does not apply")
        if not isinstance(ranges, Mapping):
            raise ValueError(
                f"{name}: task_range is a mapping of parameter name to [low, high], got "
                f"{type(ranges).__name__}; valid: {self._valid_text()}"
            )
        params = {p.name: p for p in self.task_params}
        unknown = sorted(set(ranges) - set(params))
        if unknown:
            raise ValueError(
                f"{name}: task_range has unknown keys {unknown}; valid keys: {self._valid_text()}"
            )
        overrides = dict(self._sampling_overrides or {})
        shapes = self.task_shapes()
        for key, values in ranges.items():
            overrides[key] = _ranged(name, params[key], values, shapes[key])
        self._sampling_overrides = overrides

    def _sample_task(self, rng: np.random.Generator) -> dict:
        shapes = self.task_shapes()
        task = {}
        for p in self.sampling_params():
            size = shapes[p.name] or None
            if p.radius is not None:  # area-uniform: r = R sqrt(U)
                angle = rng.uniform(0.0, 2.0 * math.pi)
                r = p.radius * math.sqrt(rng.uniform())
                v = np.array([r * math.cos(angle), r * math.sin(angle)])
            elif p.choices is not None:
                v = rng.choice(np.asarray(p.choices, dtype=float), size=size)
            elif p.integer:
                v = rng.integers(int(p.low), int(p.high) + 1, size=size)
            else:
                v = rng.uniform(p.low, p.high, size=size)
            task[p.name] = _to_python(v)
        return task

    # ------------------------------------------------------------------ validation
    def _valid_text(self) -> str:
        shapes = self.task_shapes()
        rows = []
        for p in self.task_params:
            shape = "" if shapes[p.name] == () else f" shape {list(shapes[p.name])}"
            rows.append(f"{p.name!r}{shape} in [{p.valid_low:g}, {p.valid_high:g}]")
        return "; ".join(rows)

    def validate_task(self, task: Any) -> dict:
        """Return a normalised copy of ``task`` or raise ``ValueError`` naming valid keys/ranges."""
        name = type(self).__name__
        if not isinstance(task, dict):
            raise ValueError(
                f"{name}: a task is a dict, got {type(task).__name__}; valid: {self._valid_text()}"
            )
        keys = [p.name for p in self.task_params]
        unknown = sorted(set(task) - set(keys))
        missing = [k for k in keys if k not in task]
        if unknown or missing:
            raise ValueError(
                f"{name}: unknown task keys {unknown}, missing {missing}; "
                f"valid keys: {self._valid_text()}"
            )
        shapes = self.task_shapes()
        out = {}
        for p in self.task_params:
            out[p.name] = self._validate_value(p, task[p.name], shapes[p.name])
        self._validate_extra(out)
        return out

    def _validate_value(self, p: TaskParam, value: Any, shape: tuple[int, ...]) -> Any:
        name = type(self).__name__
        t = self._sampling_param(p)
        rng_txt = (
            f"valid range [{p.valid_low:g}, {p.valid_high:g}], training range {_sampling_text(t)}"
        )

        def bad(why: str) -> ValueError:
            return ValueError(
                f"{name}: task[{p.name!r}] {why}; expected shape {list(shape)}, {rng_txt}"
            )

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
                v, (bool, np.bool_)
            )

        if shape == ():
            if not is_num(value):
                raise bad(f"must be a number, got {type(value).__name__} {value!r}")
            arr = np.asarray(value, dtype=float)
        else:
            if isinstance(value, np.ndarray):
                value = value.tolist()
            if not isinstance(value, (list, tuple)):
                raise bad(f"must be a list, got {type(value).__name__}")
            try:
                arr = np.asarray(value, dtype=object)
            except ValueError as e:  # ragged
                raise bad("is ragged") from e
            if arr.shape != tuple(shape):
                raise bad(f"has shape {list(arr.shape)}")
            if not all(is_num(v) for v in arr.ravel()):
                raise bad("must hold numbers only")
            arr = arr.astype(float)
        if not np.all(np.isfinite(arr)):
            raise bad("must be finite")
        if np.any(arr < p.valid_low) or np.any(arr > p.valid_high):
            raise bad(f"is out of range ({value!r})")
        if p.integer and np.any(arr != np.round(arr)):
            raise bad("must be integer")
        if p.integer:
            return _to_python(arr.astype(int)) if shape != () else int(arr)
        return _to_python(arr) if shape != () else float(arr)

    def _validate_extra(self, task: dict) -> None:
        """Hook for cross-field checks (e.g. rows of a transition matrix sum to 1)."""

    def complete_task(self, partial: dict) -> dict:
        """A whole task from some of its parameters: each parameter left out takes its
        ``nominal`` value (the unmodified env), and a number given for a vector parameter
        applies to every element (``{"body_mass": 1.0}``: every body 1.5x heavier in the
        random-parameter families). Raises ``ValueError`` naming a left-out parameter that has
        no nominal value; the result still goes through :meth:`validate_task`."""
        if not isinstance(partial, dict):
            return partial  # validate_task names the problem
        shapes = self.task_shapes()
        task = dict(partial)
        for p in self.task_params:
            shape = shapes[p.name]
            if p.name not in task:
                if p.nominal is None:
                    raise ValueError(
                        f"{type(self).__name__}: task parameter {p.name!r} has no default; give "
                        f"it (valid keys: {self._valid_text()})"
                    )
                task[p.name] = p.nominal
            value = task[p.name]
            if shape != () and isinstance(value, (int, float)) and not isinstance(value, bool):
                task[p.name] = _to_python(np.full(shape, float(value)))
        return self.validate_task(task)

    # ------------------------------------------------------------------ set / get
    def set_task(self, task: dict) -> None:
        """Fix the task until the next ``set_task``; resets keep it."""
        self._task = self.validate_task(task)
        self._task_fixed = True
        self._apply_task(self._task)

    def get_task(self) -> dict | None:
        """The current task (a copy), or None before the first reset/set_task."""
        return None if self._task is None else _copy_task(self._task)

    def _apply_task(self, task: dict) -> None:
        """Push ``task`` into the simulator or reward; called on every task change."""

    def _prepare_reset(self, seed: int | None, options: dict | None) -> None:
        """Seed ``np_random`` and pick the episode's task (options["task"] or a fresh sample)."""
        if seed is not None:
            import gymnasium

            gymnasium.Env.reset(self, seed=seed)  # seeds np_random only
        if options and options.get("task") is not None:
            self.set_task(options["task"])
        elif not self._task_fixed:
            self._task = self._sample_task(self.np_random)
            self._apply_task(self._task)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = super().__getstate__()  # EzPickle (MuJoCo/classic envs) or object
        if isinstance(state, dict) and "_ezpickle_args" in state:
            state = dict(state)
            state["_metarl_task"] = (self._task, self._task_fixed, self._sampling_overrides)
        return state

    def __setstate__(self, state):
        if isinstance(state, dict) and "_metarl_task" in state:
            state = dict(state)
            task, fixed, overrides = state.pop("_metarl_task")
            super().__setstate__(state)
            self._sampling_overrides = overrides
            if fixed and task is not None:
                self.set_task(task)
            return
        if hasattr(super(), "__setstate__"):
            super().__setstate__(state)
        else:  # pragma: no cover
            self.__dict__.update(state)


def _ranged(env_name: str, p: TaskParam, values: Any, shape: tuple[int, ...]) -> TaskParam:
    """``p`` drawn from ``values`` instead (see :meth:`TaskEnvMixin.set_task_range`)."""
    disk_ok = p.choices is None and shape == (2,)
    what = "a list of choices" if p.choices is not None else "[low, high]"
    if disk_ok:
        what += ' or {"radius": r}'

    def bad(why: str) -> ValueError:
        return ValueError(
            f"{env_name}: task_range[{p.name!r}] {why}; give {what} within the valid range "
            f"[{p.valid_low:g}, {p.valid_high:g}]"
        )

    if isinstance(values, Mapping) and disk_ok:
        r = values.get("radius")
        if set(values) != {"radius"} or not is_finite_number(r) or r <= 0:
            raise bad(f"must be {{'radius': r}} with a number r > 0, got {dict(values)!r}")
        if -r < p.valid_low or r > p.valid_high:
            raise bad(f"has a disk reaching outside the valid range: radius {r!r}")
        return dataclasses.replace(p, low=-float(r), high=float(r), radius=float(r))
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise bad(f"must be a list, got {type(values).__name__} {values!r}")
    nums = [v for v in values if is_finite_number(v)]
    if len(nums) != len(values):
        raise bad(f"must hold finite numbers, got {list(values)!r}")
    if any(v < p.valid_low or v > p.valid_high for v in nums):
        raise bad(f"is outside the valid range: {list(values)!r}")
    if p.choices is not None:
        if not nums:
            raise bad("is empty")
        return dataclasses.replace(p, choices=tuple(float(v) for v in nums))
    if len(nums) != 2 or nums[0] > nums[1]:
        raise bad(f"must be two numbers, low <= high, got {list(values)!r}")
    return dataclasses.replace(p, low=float(nums[0]), high=float(nums[1]), radius=None)


def is_finite_number(v: Any) -> bool:
    """``v`` is a finite int or float (not a bool): what a numeric env kwarg or range must be."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _sampling_text(p: TaskParam) -> str:
    """The sampling distribution of ``p`` for tables and errors: ``{-1, 1}``, ``U[0, 3]`` or
    ``disk(3)``."""
    if p.radius is not None:
        return f"disk({p.radius:g})"
    if p.choices:
        return f"{{{', '.join(f'{c:g}' for c in p.choices)}}}"
    return f"U[{p.low:g}, {p.high:g}]"


def _copy_task(task: dict) -> dict:
    return copy.deepcopy(task)


def stack_task_values(tasks: Sequence[dict], key: str) -> np.ndarray:
    """``np.asarray([t[key] for t in tasks], float)``: per-copy task arrays for vector envs."""
    return np.asarray([t[key] for t in tasks], dtype=np.float64)
