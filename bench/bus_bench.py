"""Bus benchmark: throughput and round-trip latency of the in-memory bus, the RabbitMQ adapter and
raw aio-pika (the baseline), measured in the same run on the same broker.

For each bus:

* ``publish 1x1``: messages published one at a time, each awaited (for RabbitMQ: its confirm), with a
  consumer running; msgs/s and client CPU µs per message (process CPU time / messages: the
  consumer's share is included);
* ``pub->consume``: N messages published in batches (RabbitMQ: confirms awaited per batch,
  ``publish_many``) until the consumer has handled all of them; msgs/s end to end;
* ``RTT p50/p99``: unpaced request -> reply across two queues (a responder consumes the request and
  publishes a reply, the client consumes the reply), one request at a time.

The raw aio-pika baseline publishes the same bytes with confirms, ``mandatory`` and persistence
into the same kind of durable quorum queues, but builds no envelope and decodes nothing. Ratios
are to that baseline (throughput: higher is better; latency: lower is better).

The RabbitMQ runs happen in a fresh vhost (created and deleted with ``rabbitmqctl``; or pass
``--vhost`` naming an existing, empty one), so the benchmark never touches anyone's queues.

    python bench/bus_bench.py [--messages 3000] [--memory-messages 20000] [--samples 500]
                              [--rabbit-url amqp://guest:guest@127.0.0.1:5672] [--loop uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aio_pika

from core.clock import SimulatedClock
from core.logging import configure_logging
from core.messages import Candle, Envelope
from core.messages.codec import JsonCodec
from core.ports import Bus, QueueSpec
from infrastructure.messaging.memory import InMemoryBus
from infrastructure.messaging.rabbitmq import RabbitMQBus

T0 = datetime(2024, 9, 14, tzinfo=UTC)
CLOCK = SimulatedClock(T0)
SINK_PATTERN = "market.candle.binance.SOL-USDT.#"
REQUEST_PATTERN = "market.candle.binance.BTC-USDT.#"
REPLY_PATTERN = "market.candle.binance.ETH-USDT.#"
BATCH = 256
PREFETCH = 256


def candle(i: int, symbol: str) -> Candle:
    """A valid hourly candle (values of the first BTC/USDT 1h candle of tests/data, drifting with i)."""
    base = Decimal("59960.01") + Decimal(i % 1000)
    return Candle(
        venue="binance",
        symbol=symbol,
        timeframe="1h",
        open_time=T0 + timedelta(hours=i),
        close_time=T0 + timedelta(hours=i + 1),
        open=base,
        high=base + Decimal("120.5"),
        low=base - Decimal("80.25"),
        close=base + Decimal("10"),
        volume=Decimal("312.45678"),
        sequence=i,
    )


def envelopes(n: int, symbol: str) -> list[Envelope]:
    """``n`` wrapped candles (built before any timing starts)."""
    return [Envelope.wrap(candle(i, symbol), source="bench", clock=CLOCK) for i in range(n)]


@dataclass
class Result:
    """One row of the table."""

    name: str
    messages: int
    publish_rate: float
    publish_cpu_us: float
    pipeline_rate: float
    p50_ms: float
    p99_ms: float


def median_result(runs: Sequence[Result]) -> Result:
    """Each figure's median over repeated runs (robust to one run disturbed by a busy machine)."""
    return Result(
        name=runs[0].name,
        messages=runs[0].messages,
        publish_rate=statistics.median(r.publish_rate for r in runs),
        publish_cpu_us=statistics.median(r.publish_cpu_us for r in runs),
        pipeline_rate=statistics.median(r.pipeline_rate for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


class Counter:
    """Counts deliveries and wakes a waiter when a target is reached."""

    def __init__(self) -> None:
        self.count = 0
        self.target = -1
        self.reached = asyncio.Event()

    def expect(self, target: int) -> None:
        self.count = 0
        self.target = target
        self.reached = asyncio.Event()

    def hit(self) -> None:
        self.count += 1
        if self.count == self.target:
            self.reached.set()


async def measure(
    name: str,
    n: int,
    samples: int,
    publish_one: Callable[[int], Awaitable[None]],
    publish_batch: Callable[[int, int], Awaitable[None]],
    request: Callable[[int], Awaitable[None]],
    sink: Counter,
    replies: list[asyncio.Future[float]],
) -> Result:
    """Run the three measurements with callables that hide which bus is used."""
    # warm-up (connections, JIT-free but caches, broker queue processes)
    sink.expect(min(200, n))
    for i in range(min(200, n)):
        await publish_one(i)
    await asyncio.wait_for(sink.reached.wait(), 60)

    sink.expect(n)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        await publish_one(i)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await asyncio.wait_for(sink.reached.wait(), 120)
    publish_rate, cpu_us = n / elapsed, cpu / n * 1e6

    sink.expect(n)
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        await publish_batch(start, min(start + BATCH, n))
    await asyncio.wait_for(sink.reached.wait(), 120)
    pipeline_rate = n / (time.perf_counter() - t0)

    latencies: list[float] = []
    warm = min(50, samples)
    for i in range(samples + warm):
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        replies.append(future)
        sent = time.perf_counter()
        await request(i)
        received = await asyncio.wait_for(future, 30)
        if i >= warm:
            latencies.append((received - sent) * 1e3)
    return Result(
        name=name,
        messages=n,
        publish_rate=publish_rate,
        publish_cpu_us=cpu_us,
        pipeline_rate=pipeline_rate,
        p50_ms=statistics.median(latencies),
        p99_ms=percentile(latencies, 99),
    )


async def bench_bus(name: str, make: Callable[[], Awaitable[Bus]], n: int, samples: int) -> Result:
    """The three measurements through the :class:`Bus` port (in-memory or RabbitMQ)."""
    bus = await make()
    sink = Counter()
    replies: list[asyncio.Future[float]] = []
    reply_payload = candle(0, "ETH/USDT")

    async def on_sink(_: Envelope) -> None:
        sink.hit()

    async def on_request(env: Envelope) -> None:
        await bus.publish(Envelope.wrap(reply_payload, source="bench", clock=CLOCK, cause=env))

    async def on_reply(_: Envelope) -> None:
        future = replies.pop(0)
        future.set_result(time.perf_counter())

    await bus.subscribe(QueueSpec("bench.sink", (SINK_PATTERN,), prefetch=PREFETCH), on_sink)
    await bus.subscribe(QueueSpec("bench.requests", (REQUEST_PATTERN,), prefetch=PREFETCH), on_request)
    await bus.subscribe(QueueSpec("bench.replies", (REPLY_PATTERN,), prefetch=PREFETCH), on_reply)
    messages = envelopes(n, "SOL/USDT")
    requests = envelopes(samples + 50, "BTC/USDT")
    publish_many = getattr(bus, "publish_many", None)

    async def publish_one(i: int) -> None:
        await bus.publish(messages[i])

    async def publish_batch(start: int, stop: int) -> None:
        if publish_many is not None:
            await publish_many(messages[start:stop])
        else:
            for env in messages[start:stop]:
                await bus.publish(env)

    async def request(i: int) -> None:
        await bus.publish(requests[i])

    try:
        return await measure(name, n, samples, publish_one, publish_batch, request, sink, replies)
    finally:
        await bus.close()


async def bench_raw(url: str, n: int, samples: int) -> Result:
    """The baseline: plain aio-pika, confirmed + mandatory + persistent, quorum queues, no envelope."""
    connection = await aio_pika.connect_robust(url, client_properties={"connection_name": "bench-raw"})
    try:
        publish_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await publish_channel.declare_exchange("bench.raw", aio_pika.ExchangeType.TOPIC, durable=True)
        sink = Counter()
        replies: list[asyncio.Future[float]] = []
        codec = JsonCodec()
        bodies = [codec.encode(env) for env in envelopes(n, "SOL/USDT")]
        request_bodies = [codec.encode(env) for env in envelopes(samples + 50, "BTC/USDT")]
        reply_body = codec.encode(envelopes(1, "ETH/USDT")[0])
        persistent = aio_pika.DeliveryMode.PERSISTENT

        async def consume(queue_name: str, pattern: str, callback: Callable[[bytes], Awaitable[None]]) -> None:
            channel = await connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
            await queue.bind(exchange, routing_key=pattern)

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                await callback(message.body)
                await message.ack()

            await queue.consume(on_message)

        async def on_sink(_: bytes) -> None:
            sink.hit()

        async def on_request(_: bytes) -> None:
            await exchange.publish(aio_pika.Message(reply_body, delivery_mode=persistent), "reply.x", mandatory=True)

        async def on_reply(_: bytes) -> None:
            replies.pop(0).set_result(time.perf_counter())

        await consume("bench.raw.sink", "sink.#", on_sink)
        await consume("bench.raw.requests", "request.#", on_request)
        await consume("bench.raw.replies", "reply.#", on_reply)

        async def publish_one(i: int) -> None:
            await exchange.publish(aio_pika.Message(bodies[i], delivery_mode=persistent), "sink.x", mandatory=True)

        async def publish_batch(start: int, stop: int) -> None:
            await asyncio.gather(
                *(
                    exchange.publish(aio_pika.Message(body, delivery_mode=persistent), "sink.x", mandatory=True)
                    for body in bodies[start:stop]
                )
            )

        async def request(i: int) -> None:
            await exchange.publish(
                aio_pika.Message(request_bodies[i], delivery_mode=persistent), "request.x", mandatory=True
            )

        return await measure("raw aio-pika (baseline)", n, samples, publish_one, publish_batch, request, sink, replies)
    finally:
        await connection.close()


def rabbitmqctl(*args: str) -> str:
    """Run rabbitmqctl or exit with its error."""
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        raise SystemExit("rabbitmqctl not found: pass --vhost naming an existing, empty vhost instead")
    result = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise SystemExit(f"rabbitmqctl {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result.stdout


def vhost_url(base: str, vhost: str) -> str:
    """``base`` with its path replaced by ``vhost``."""
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query, ""))


def print_table(results: list[Result], loop_name: str, repeat: int) -> None:
    """The figures and their ratios to the raw aio-pika baseline."""
    baseline = next((r for r in results if r.name.startswith("raw")), None)
    header = (
        f"{'bus':<26}{'msgs':>7}{'publish 1x1':>14}{'CPU us/msg':>12}{'pub->consume':>15}{'RTT p50':>10}{'RTT p99':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<26}{r.messages:>7}{r.publish_rate:>10,.0f} m/s{r.publish_cpu_us:>12.1f}"
            f"{r.pipeline_rate:>11,.0f} m/s{r.p50_ms:>8.3f}ms{r.p99_ms:>8.3f}ms"
        )
    if baseline is not None:
        print()
        print("ratio to raw aio-pika (throughput: x faster; CPU and latency: x of baseline)")
        for r in results:
            print(
                f"{r.name:<26}{'':>7}{r.publish_rate / baseline.publish_rate:>13.2f}x"
                f"{r.publish_cpu_us / baseline.publish_cpu_us:>11.2f}x"
                f"{r.pipeline_rate / baseline.pipeline_rate:>14.2f}x"
                f"{r.p50_ms / baseline.p50_ms:>9.2f}x{r.p99_ms / baseline.p99_ms:>9.2f}x"
            )
    print()
    print(
        f"event loop: {loop_name}; python {platform.python_version()}; aio-pika {aio_pika.__version__}; "
        f"{os.cpu_count()} CPUs; {platform.machine()} {platform.system()} {platform.release()}; "
        f"batch {BATCH}, prefetch {PREFETCH}; persistent messages, durable quorum queues; "
        f"RabbitMQ figures: median of {repeat} run(s)"
    )


async def main(args: argparse.Namespace) -> None:
    """Run every benchmark in one event loop and print the table."""
    configure_logging(level="error")
    loop_name = f"{type(asyncio.get_running_loop()).__module__}.{type(asyncio.get_running_loop()).__name__}"
    results: list[Result] = []

    async def make_memory() -> Bus:
        bus = InMemoryBus()
        await bus.start()
        return bus

    if not args.skip_memory:
        results.append(await bench_bus("in-memory bus", make_memory, args.memory_messages, args.memory_samples))

    if not args.skip_rabbit:
        vhost = args.vhost or f"ts-bench-{uuid.uuid4().hex[:10]}"
        created = args.vhost is None
        if created:
            rabbitmqctl("add_vhost", vhost)
            rabbitmqctl("set_permissions", "-p", vhost, urlsplit(args.rabbit_url).username or "guest", ".*", ".*", ".*")
        url = vhost_url(args.rabbit_url, vhost)
        try:

            async def make_rabbit() -> Bus:
                bus = RabbitMQBus(url, connection_name="bench-bus", agent_kind="bench")
                await bus.start()
                return bus

            raw_runs: list[Result] = []
            bus_runs: list[Result] = []
            for i in range(args.repeat):
                # alternate which goes first, so that neither always runs on a broker still busy
                # with the other's writes, and a noisy neighbour hits both alike
                order = ("raw", "bus") if i % 2 == 0 else ("bus", "raw")
                for which in order:
                    if which == "raw":
                        raw_runs.append(await bench_raw(url, args.messages, args.samples))
                        run = raw_runs[-1]
                    else:
                        bus_runs.append(await bench_bus("RabbitMQBus", make_rabbit, args.messages, args.samples))
                        run = bus_runs[-1]
                    if args.verbose:
                        print(
                            f"run {i + 1} {run.name}: {run.publish_rate:,.0f} m/s 1x1, {run.pipeline_rate:,.0f} m/s "
                            f"pub->consume, RTT p50 {run.p50_ms:.3f} ms p99 {run.p99_ms:.3f} ms",
                            flush=True,
                        )
            results.append(median_result(raw_runs))
            results.append(median_result(bus_runs))
        finally:
            if created:
                rabbitmqctl("delete_vhost", vhost)
    print_table(results, loop_name, args.repeat)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=3000, help="messages per RabbitMQ throughput run")
    parser.add_argument("--memory-messages", type=int, default=20_000, help="messages per in-memory run")
    parser.add_argument("--samples", type=int, default=500, help="request/reply round trips (RabbitMQ)")
    parser.add_argument("--memory-samples", type=int, default=5000, help="round trips (in-memory)")
    parser.add_argument("--rabbit-url", default="amqp://guest:guest@127.0.0.1:5672", help="broker URL (no vhost)")
    parser.add_argument("--vhost", default=None, help="use this existing, empty vhost instead of a temporary one")
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    parser.add_argument(
        "--repeat", type=int, default=1, help="RabbitMQ runs per bus, alternating; the table shows medians"
    )
    parser.add_argument("--verbose", action="store_true", help="print every RabbitMQ run, not only the medians")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-rabbit", action="store_true")
    args = parser.parse_args(argv)
    if min(args.messages, args.memory_messages, args.samples, args.memory_samples, args.repeat) < 1:
        parser.error("counts must be >= 1")
    return args


def run(argv: Sequence[str] | None = None) -> None:
    """Entry point: pick the event loop, run :func:`main`."""
    args = parse_args(argv)
    use_uvloop = args.loop == "uvloop"
    if args.loop == "auto":
        try:
            import uvloop

            use_uvloop = True
        except ImportError:
            use_uvloop = False
    if use_uvloop:
        import uvloop

        uvloop.run(main(args))
    else:
        asyncio.run(main(args))


if __name__ == "__main__":
    run()
