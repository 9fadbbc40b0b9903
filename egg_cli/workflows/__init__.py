"""Workflows that chain egg commands (the demo): stages run in-process, the report."""
