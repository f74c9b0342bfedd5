"""The AI analyst desk's pure core: role output models, role routing to tiers, input ports.

The desk (``agents/desk``) runs six roles in a fixed order — technical, sentiment and tokenomics
analysts (cheap tier, concurrently), then researcher, trader and risk manager (strong tier) — and
each role answers with one of the frozen models of :mod:`core.desk.roles`.
"""
