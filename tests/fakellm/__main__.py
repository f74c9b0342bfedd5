"""``python -m tests.fakellm [--port N] [--key K]``: run the fake server until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from tests.fakellm.server import DEFAULT_KEY, FakeLLM


async def _serve(port: int, key: str) -> None:
    fake = await FakeLLM(api_key=key).start(port)
    print(f"fake OpenAI-compatible server on {fake.base_url} (key {key})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.close()


def main() -> None:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--key", default=DEFAULT_KEY)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port, args.key))


if __name__ == "__main__":
    main()
