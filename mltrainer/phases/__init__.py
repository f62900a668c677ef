"""One module per phase: each runs its phase and returns data (its outcome) for the gate."""
