"""`python -m agents.technical_analysis` runs the technical analysis agent in this process."""

from agents.base.host import run_agent

if __name__ == "__main__":
    raise SystemExit(run_agent("technical_analysis"))
