"""Recordings, replay and the synthetic city traffic generator."""
