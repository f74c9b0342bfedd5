"""Backtest jobs run in the background of the API process, with an injectable runner."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from uuid import UUID

from core.logging import get_logger
from infrastructure.api.ports import BacktestRunner
from infrastructure.api.schemas import BacktestJobView, BacktestRequest

JOB_PROGRESS: ContextVar[Callable[[int], None] | None] = ContextVar("backtest_job_progress", default=None)
"""Set while a job's runner runs: a runner may call it with the candles processed so far (from any thread)."""
JOB_TOTAL: ContextVar[Callable[[int], None] | None] = ContextVar("backtest_job_total", default=None)
"""Set while a job's runner runs: a runner may call it once with the candles the job will process."""


class BacktestJobs:
    """Accepts backtest requests, runs at most ``workers`` at a time, remembers ``keep`` jobs.

    ``now`` is the clock used for the job timestamps (the orchestrator passes its injected clock).
    """

    def __init__(
        self,
        runner: BacktestRunner,
        *,
        workers: int = 1,
        keep: int = 100,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._runner = runner
        self._slots = asyncio.Semaphore(workers)
        self._keep = keep
        self._now = now or (lambda: datetime.now(UTC))
        self._jobs: OrderedDict[UUID, BacktestJobView] = OrderedDict()
        self._progress: dict[UUID, int] = {}
        self._totals: dict[UUID, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._log = get_logger(__name__)

    def submit(self, request: BacktestRequest) -> BacktestJobView:
        """Queue a job and return it at once (state ``queued``)."""
        job = BacktestJobView(job_id=uuid.uuid4(), state="queued", request=request, submitted_at=self._now())
        self._jobs[job.job_id] = job
        while len(self._jobs) > self._keep:
            oldest, old = next(iter(self._jobs.items()))
            if old.state in ("queued", "running"):
                break
            self._jobs.pop(oldest)
        task = asyncio.create_task(self._run(job.job_id), name=f"backtest:{job.job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def get(self, job_id: UUID) -> BacktestJobView | None:
        """A job's current view (with its progress while it runs)."""
        job = self._jobs.get(job_id)
        if job is not None and job.state == "running" and (job_id in self._progress or job_id in self._totals):
            job = job.model_copy(
                update={"progress": self._progress.get(job_id, 0), "progress_total": self._totals.get(job_id)}
            )
        return job

    def list(self) -> list[BacktestJobView]:
        """Every remembered job, newest first."""
        return [view for job_id in reversed(self._jobs) if (view := self.get(job_id)) is not None]

    async def wait(self, job_id: UUID) -> BacktestJobView | None:
        """Wait until the job finished (for tests and scripts)."""
        while True:
            job = self._jobs.get(job_id)
            if job is None or job.state in ("succeeded", "failed"):
                return job
            await asyncio.sleep(0.01)

    async def _run(self, job_id: UUID) -> None:
        async with self._slots:
            job = self._jobs[job_id]
            self._jobs[job_id] = job = job.model_copy(update={"state": "running", "started_at": self._now()})
            token = JOB_PROGRESS.set(lambda n: self._progress.__setitem__(job_id, n))
            total_token = JOB_TOTAL.set(lambda n: self._totals.__setitem__(job_id, n))
            try:
                result = await self._runner(job.request)
            except asyncio.CancelledError:
                self._jobs[job_id] = job.model_copy(
                    update={"state": "failed", "finished_at": self._now(), "error": "cancelled at shutdown"}
                )
                raise
            except Exception as exc:  # noqa: BLE001 - a failed job is reported, never crashes the API
                self._log.exception("backtest job failed", job_id=str(job_id))
                self._jobs[job_id] = job.model_copy(
                    update={"state": "failed", "finished_at": self._now(), "error": f"{type(exc).__name__}: {exc}"}
                )
                return
            finally:
                JOB_PROGRESS.reset(token)
                JOB_TOTAL.reset(total_token)
                self._progress.pop(job_id, None)
                self._totals.pop(job_id, None)
            self._jobs[job_id] = job.model_copy(
                update={"state": "succeeded", "finished_at": self._now(), "result": result}
            )

    async def close(self) -> None:
        """Cancel running jobs (at shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
