"""Fakes of the external systems sopbot talks to (OneBot implementations, …)."""
