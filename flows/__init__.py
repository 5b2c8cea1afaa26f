"""Bytewax dataflows: wiring, configuration and the command line."""
