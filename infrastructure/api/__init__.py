"""The REST API of the swarm (FastAPI), served by the orchestrator. OpenAPI docs at ``/docs``."""
