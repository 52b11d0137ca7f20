"""Crash safety: ``offerhub serve`` killed with SIGKILL under load, restarted, then audited."""
