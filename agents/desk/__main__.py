"""`python -m agents.desk` runs the AI desk agent in this process."""

from agents.base.host import run_agent

if __name__ == "__main__":
    raise SystemExit(run_agent("desk"))
