"""The daemon: one loop that owns time (`loop.Daemon.tick`), its scheduler and signals
(`scheduler`), policy reload (`reload`), state that survives restarts (`statefile`), the
operator control socket (`control`) and systemd notification (`notify`)."""
