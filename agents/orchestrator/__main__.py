"""`python -m agents.orchestrator` runs the orchestrator agent in this process."""

from agents.base.host import run_agent

if __name__ == "__main__":
    raise SystemExit(run_agent("orchestrator"))
