"""Tests of the bot package (infrastructure and runtime)."""
