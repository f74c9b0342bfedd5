"""`python -m agents.risk` runs the risk agent in this process."""

from agents.base.host import run_agent

if __name__ == "__main__":
    raise SystemExit(run_agent("risk"))
