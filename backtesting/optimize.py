"""Parameter optimisation with optuna (grid, TPE, NSGA-II) and walk-forward validation.

Every trial is a full backtest through the agents (:class:`backtesting.engine.BacktestEngine`).
Trials run in a process pool (``n_jobs`` processes, default 2: both cores) with optuna's ask/tell
interface, pipelined with a fixed lag: ``2 * n_jobs`` trials are asked at the start, results are
told in ask order, and trial ``k`` is asked right after trial ``k - 2 * n_jobs`` is told. A worker
that finishes early takes the next queued trial instead of waiting for the slowest of a batch, and a
seeded study is still reproducible whatever the scheduling: each trial is asked knowing exactly the
same earlier trials. Where workers are forked, the parent imports the engine and parses the data
once before starting them (they inherit both).

Search space syntax (``--space``): ``STRATEGY.PARAM=LOW:HIGH[:STEP]`` (integers when all three are
integers, floats otherwise) or ``STRATEGY.PARAM=A,B,C`` (categorical). Grid search needs a step or
a list for every parameter.

Walk-forward: the data's time span is cut into ``folds`` consecutive out-of-sample windows; each
is preceded by an in-sample window ``in_sample_ratio`` times as long (rolling). Parameters are
optimised on the in-sample window only and then run, unchanged, on the out-of-sample window that
follows. A large gap between in-sample and out-of-sample objectives exposes overfitting.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna

from backtesting.config import BacktestConfig
from backtesting.data import DataError, file_source, utc_ms
from core.errors import ConfigurationError
from infrastructure.feeds.files import iter_csv_rows

SamplerName = Literal["grid", "tpe", "nsga2"]

Direction = Literal["minimize", "maximize"]

OBJECTIVES: dict[str, tuple[str, Direction]] = {
    "sharpe": ("sharpe", "maximize"),
    "sortino": ("sortino", "maximize"),
    "calmar": ("calmar", "maximize"),
    "return": ("total_return", "maximize"),
    "cagr": ("cagr", "maximize"),
    "drawdown": ("max_drawdown", "minimize"),
    "profit_factor": ("profit_factor", "maximize"),
    "win_rate": ("win_rate", "maximize"),
}
"""Objective name -> (metric, direction)."""


@dataclass(frozen=True, slots=True)
class Dimension:
    """One searched parameter."""

    strategy: str
    param: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    integer: bool = False
    choices: tuple[Any, ...] | None = None

    @property
    def name(self) -> str:
        """``strategy.param``."""
        return f"{self.strategy}.{self.param}"

    def grid(self) -> list[Any]:
        """Every value of this dimension (grid search)."""
        if self.choices is not None:
            return list(self.choices)
        if self.step is None or self.low is None or self.high is None:
            raise ConfigurationError(f"grid search needs a step or a list for {self.name}")
        values: list[Any] = []
        n = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        for i in range(n):
            v = self.low + i * self.step
            values.append(round(v) if self.integer else round(v, 12))
        return values


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return _number(text.strip())
    except ValueError:
        return text.strip()


def parse_space(items: Sequence[str]) -> list[Dimension]:
    """Parse ``--space`` items (see the module docstring); raises ``ConfigurationError``."""
    dims: list[Dimension] = []
    for item in items:
        name, sep, spec = item.partition("=")
        strategy, dot, param = name.strip().partition(".")
        if not sep or not dot or not strategy or not param or not spec:
            raise ConfigurationError(
                f"bad --space {item!r}; expected STRATEGY.PARAM=LOW:HIGH[:STEP] or STRATEGY.PARAM=A,B"
            )
        if "," in spec:
            dims.append(Dimension(strategy, param, choices=tuple(_value(v) for v in spec.split(","))))
            continue
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise ConfigurationError(f"bad --space range {spec!r} for {name}; expected LOW:HIGH[:STEP]")
        try:
            nums = [_number(p) for p in parts]
        except ValueError:
            raise ConfigurationError(f"bad --space range {spec!r} for {name}: not numbers") from None
        if nums[0] >= nums[1]:
            raise ConfigurationError(f"--space {name}: LOW must be below HIGH")
        integer = all(isinstance(n, int) for n in nums)
        step = nums[2] if len(nums) == 3 else (1 if integer else None)
        if step is not None and step <= 0:
            raise ConfigurationError(f"--space {name}: STEP must be positive")
        dims.append(Dimension(strategy, param, float(nums[0]), float(nums[1]), step, integer))
    names = [d.name for d in dims]
    if len(set(names)) != len(names):
        raise ConfigurationError("a parameter appears twice in --space")
    if not dims:
        raise ConfigurationError("give at least one --space STRATEGY.PARAM=...")
    return dims


def suggest(trial: optuna.Trial, dims: Sequence[Dimension]) -> dict[str, dict[str, Any]]:
    """The trial's parameters as ``{strategy: {param: value}}``."""
    params: dict[str, dict[str, Any]] = {}
    for d in dims:
        if d.choices is not None:
            value: Any = trial.suggest_categorical(d.name, list(d.choices))
        elif d.integer:
            assert d.low is not None
            assert d.high is not None
            value = trial.suggest_int(d.name, int(d.low), int(d.high), step=int(d.step or 1))
        else:
            assert d.low is not None
            assert d.high is not None
            value = trial.suggest_float(d.name, d.low, d.high, step=d.step)
        params.setdefault(d.strategy, {})[d.param] = value
    return params


def make_sampler(name: SamplerName, dims: Sequence[Dimension], seed: int) -> optuna.samplers.BaseSampler:
    """The optuna sampler (seeded)."""
    if name == "grid":
        # the grid's points are enqueued in order by :func:`optimise` (optuna's GridSampler stops
        # the study from inside ``tell``, which the ask/tell loop of a process pool cannot use)
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, 4 * len(dims))))
    raise ConfigurationError(f"unknown sampler {name!r}; choose grid, tpe or nsga2")


@dataclass(frozen=True, slots=True)
class Job:
    """One backtest to run in a worker: picklable inputs only."""

    paths: tuple[str, ...]
    start_ms: int | None
    end_ms: int | None
    config: dict[str, Any]


def objective_values(metrics: dict[str, Any], objectives: Sequence[str]) -> list[float]:
    """The objective values (a missing/undefined metric counts as the worst value)."""
    out: list[float] = []
    for name in objectives:
        metric, direction = OBJECTIVES[name]
        value = metrics.get(metric)
        if value is None:
            value = math.inf if metric == "profit_factor" else (-math.inf if direction == "maximize" else math.inf)
        v = float(value)
        if not math.isfinite(v):
            v = 1e9 if v > 0 else -1e9
        out.append(v)
    return out


def _preload_for_workers(paths: Sequence[str], start_ms: int | None, end_ms: int | None) -> None:
    """Where worker processes are forked, import the engine and parse the data once in the parent:
    the workers inherit both (and share the parsed arrays' memory) instead of each paying for them on
    its first trial. Elsewhere (spawn) each worker reads the data on its first trial."""
    if multiprocessing.get_start_method(allow_none=False) != "fork":
        return
    import backtesting.engine  # noqa: F401 - imported for the forked workers

    start = utc_ms(start_ms) if start_ms is not None else None
    end = utc_ms(end_ms) if end_ms is not None else None
    for path in paths:
        source = file_source(path, start, end, cache=True)
        if source.blocks is not None:
            for _ in source.blocks():  # parsed into the process's cache (backtesting.csv_blocks)
                pass


def run_job(job: Job) -> dict[str, Any]:
    """Run one backtest (in a worker process); returns its metrics."""
    import asyncio

    from backtesting.engine import BacktestEngine

    start = utc_ms(job.start_ms) if job.start_ms is not None else None
    end = utc_ms(job.end_ms) if job.end_ms is not None else None
    started = time.perf_counter()
    cpu = time.process_time()
    # the worker keeps the parsed data: the next trial on the same file skips reading it
    sources = [file_source(p, start, end, cache=True) for p in job.paths]
    config = BacktestConfig.model_validate(job.config)
    result = asyncio.run(BacktestEngine(config, sources).run())
    metrics = result.metrics.as_dict()
    metrics["bars"] = result.candles
    metrics["worker_pid"] = os.getpid()
    metrics["trial_s"] = time.perf_counter() - started
    metrics["trial_cpu_s"] = time.process_time() - cpu
    metrics["bars_per_second"] = result.bars_per_second
    return metrics


@dataclass(slots=True)
class TrialResult:
    """One finished trial."""

    number: int
    params: dict[str, dict[str, Any]]
    values: list[float]
    metrics: dict[str, Any]


@dataclass(slots=True)
class StudyResult:
    """The outcome of an optimisation."""

    sampler: str
    objectives: list[str]
    trials: list[TrialResult] = field(default_factory=list)
    best: list[TrialResult] = field(default_factory=list)
    elapsed_s: float = 0.0
    """Wall time of the study (asking, running and telling every trial)."""
    n_jobs: int = 1

    @property
    def trials_per_minute(self) -> float:
        """Finished trials per minute of wall time."""
        return len(self.trials) / self.elapsed_s * 60 if self.elapsed_s > 0 else 0.0

    @property
    def trials_per_minute_per_process(self) -> float:
        """:attr:`trials_per_minute` per worker process (one process per core)."""
        return self.trials_per_minute / max(1, self.n_jobs)

    def speed_line(self) -> str:
        """Trials per minute (overall and per worker process) and the backtests' own speed."""
        speeds = [float(t.metrics.get("bars_per_second", 0.0)) for t in self.trials]
        bars = [int(t.metrics.get("bars", 0)) for t in self.trials]
        cpu = [float(t.metrics.get("trial_cpu_s", 0.0)) for t in self.trials]
        median = statistics.median(speeds) if speeds else 0.0
        median_cpu = statistics.median(cpu) if cpu else 0.0
        per_core = f", {60 / median_cpu:.2f} trials per CPU-minute" if median_cpu > 0 else ""
        return (
            f"{len(self.trials)} trials in {self.elapsed_s:.1f} s: {self.trials_per_minute:.2f} trials/min, "
            f"{self.trials_per_minute_per_process:.2f} per worker process ({self.n_jobs}); "
            f"{statistics.median(bars) if bars else 0:,.0f} candles per trial at a median {median:,.0f} candles/s; "
            f"median CPU per trial {median_cpu:.1f} s{per_core}"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "sampler": self.sampler,
            "objectives": self.objectives,
            "elapsed_s": round(self.elapsed_s, 3),
            "n_jobs": self.n_jobs,
            "trials_per_minute": round(self.trials_per_minute, 3),
            "trials_per_minute_per_process": round(self.trials_per_minute_per_process, 3),
            "trials": [{"number": t.number, "params": t.params, "values": t.values} for t in self.trials],
            "best": [
                {"number": t.number, "params": t.params, "values": t.values, "metrics": t.metrics} for t in self.best
            ],
        }


def optimise(
    paths: Sequence[str],
    base: BacktestConfig,
    dims: Sequence[Dimension],
    *,
    objectives: Sequence[str] = ("sharpe",),
    sampler: SamplerName = "tpe",
    trials: int = 20,
    n_jobs: int = 2,
    seed: int = 42,
    start_ms: int | None = None,
    end_ms: int | None = None,
    on_trial: Callable[[TrialResult], None] | None = None,
    executor: Executor | None = None,
) -> StudyResult:
    """Search ``dims`` for the best ``objectives`` (see the module docstring)."""
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown:
        raise ConfigurationError(f"unknown objective(s) {unknown}; choose from {', '.join(OBJECTIVES)}")
    missing = sorted({d.strategy for d in dims} - set(base.strategies))
    if missing:
        raise ConfigurationError(f"--space names strategies that are not enabled: {missing}")
    if sampler == "grid":
        total = 1
        for d in dims:
            total *= len(d.grid())
        trials = min(trials, total) if trials > 0 else total
    directions: list[Direction] = [OBJECTIVES[o][1] for o in objectives]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=directions, sampler=make_sampler(sampler, dims, seed))
    if sampler == "grid":
        for point in itertools.product(*(d.grid() for d in dims)):
            study.enqueue_trial({d.name: v for d, v in zip(dims, point, strict=True)})
    result = StudyResult(sampler=sampler, objectives=list(objectives), n_jobs=max(1, n_jobs))
    started = time.perf_counter()
    own = executor is None
    if own and n_jobs > 1:
        _preload_for_workers(paths, start_ms, end_ms)
    pool = executor or ProcessPoolExecutor(max_workers=max(1, n_jobs))
    lag = 2 * max(1, n_jobs)
    pending: dict[int, tuple[optuna.trial.Trial, Future[dict[str, Any]]]] = {}
    asked = 0

    def ask() -> None:
        nonlocal asked
        trial = study.ask()
        params = {**base.params}
        for strategy, chosen in suggest(trial, dims).items():
            params[strategy] = {**params.get(strategy, {}), **chosen}
        trial.set_user_attr("params", params)
        config = base.model_copy(update={"params": params}).model_dump(mode="json")
        pending[asked] = (trial, pool.submit(run_job, Job(tuple(paths), start_ms, end_ms, config)))
        asked += 1

    failed = True
    try:
        while asked < min(lag, trials):
            ask()
        for told in range(trials):
            trial, future = pending.pop(told)
            try:
                metrics = future.result()
            except ConfigurationError:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                values = objective_values(metrics, objectives)
                study.tell(trial, values if len(values) > 1 else values[0])
                tr = TrialResult(trial.number, trial.user_attrs["params"], values, metrics)
                result.trials.append(tr)
                if on_trial is not None:
                    on_trial(tr)
            if asked < trials:
                ask()  # trial ``told + lag``: it sees exactly the trials up to ``told``, whatever the timing
        failed = False
    finally:
        if own:
            pool.shutdown(cancel_futures=failed)
    result.elapsed_s = time.perf_counter() - started
    by_number = {t.number: t for t in result.trials}
    best = study.best_trials if len(objectives) > 1 else ([study.best_trial] if result.trials else [])
    result.best = [by_number[t.number] for t in best if t.number in by_number]
    return result


def data_span_ms(paths: Sequence[str]) -> tuple[int, int]:
    """First and last candle open time over every file (milliseconds)."""
    first, last = None, None
    for p in paths:
        if not p.lower().endswith(".csv"):
            raise DataError(f"{p}: optimisation and walk-forward read CSV files")
        times = [row[0] for row in iter_csv_rows(p)]
        if not times:
            raise DataError(f"{p}: no candles")
        first = times[0] if first is None else min(first, times[0])
        last = times[-1] if last is None else max(last, times[-1])
    if first is None or last is None:
        raise DataError("no data")
    return first, last


@dataclass(slots=True)
class Fold:
    """One walk-forward step."""

    index: int
    in_sample: tuple[int, int]
    out_of_sample: tuple[int, int]
    params: dict[str, dict[str, Any]]
    in_sample_values: list[float]
    out_of_sample_values: list[float]
    out_of_sample_metrics: dict[str, Any]


def windows(
    first_ms: int, last_ms: int, folds: int, in_sample_ratio: float
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """``folds`` rolling (in-sample, out-of-sample) windows ``[start, end)`` covering the span."""
    if folds < 1:
        raise ConfigurationError("folds must be >= 1")
    if in_sample_ratio <= 0:
        raise ConfigurationError("in_sample_ratio must be positive")
    span = last_ms + 1 - first_ms
    oos = int(span / (folds + in_sample_ratio))
    ins = int(oos * in_sample_ratio)
    if oos <= 0 or ins <= 0:
        raise ConfigurationError("not enough data for that many folds")
    out = []
    for k in range(folds):
        is_start = first_ms + k * oos
        is_end = is_start + ins
        out.append(((is_start, is_end), (is_end, min(is_end + oos, last_ms + 1))))
    return out


def walk_forward(
    paths: Sequence[str],
    base: BacktestConfig,
    dims: Sequence[Dimension],
    *,
    objective: str = "sharpe",
    sampler: SamplerName = "tpe",
    trials: int = 20,
    folds: int = 3,
    in_sample_ratio: float = 3.0,
    n_jobs: int = 2,
    seed: int = 42,
    on_fold: Callable[[Fold], None] | None = None,
) -> list[Fold]:
    """Optimise on each in-sample window, validate on the next out-of-sample one."""
    first, last = data_span_ms(paths)
    results: list[Fold] = []
    with ProcessPoolExecutor(max_workers=max(1, n_jobs)) as pool:
        for k, (ins, oos) in enumerate(windows(first, last, folds, in_sample_ratio)):
            study = optimise(paths, base, dims, objectives=(objective,), sampler=sampler, trials=trials,
                             n_jobs=n_jobs, seed=seed + k, start_ms=ins[0], end_ms=ins[1], executor=pool)  # fmt: skip
            if not study.best:
                raise ConfigurationError(f"fold {k}: no trial finished")
            best = study.best[0]
            config = base.model_copy(update={"params": best.params}).model_dump(mode="json")
            metrics = pool.submit(run_job, Job(tuple(paths), oos[0], oos[1], config)).result()
            fold = Fold(k, ins, oos, best.params, best.values, objective_values(metrics, (objective,)), metrics)
            results.append(fold)
            if on_fold is not None:
                on_fold(fold)
    return results


def iso(ms: int) -> str:
    """Milliseconds as ``YYYY-MM-DD HH:MM`` (UTC)."""
    return utc_ms(ms).strftime("%Y-%m-%d %H:%M")
