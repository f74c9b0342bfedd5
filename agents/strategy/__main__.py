"""`python -m agents.strategy` runs the strategy agent in this process."""

from agents.base.host import run_agent

if __name__ == "__main__":
    raise SystemExit(run_agent("strategy"))
