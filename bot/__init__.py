"""sopbot infrastructure: config, clock, gateways, store, intake, web, composition root."""

__version__ = "0.1.0"
