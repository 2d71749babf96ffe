"""The long-running service: daemon, scheduler, health, locks, logging."""
