"""Metrics and (later) reports."""
