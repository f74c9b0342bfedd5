"""Strategy plugins and the consensus (signal-fusion) engine. Pure: no I/O."""
