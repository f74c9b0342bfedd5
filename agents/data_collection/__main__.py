"""`python -m agents.data_collection` runs the data collection agent in this process."""

from agents.base.host import run_agent

if __name__ == "__main__":
    raise SystemExit(run_agent("data_collection"))
