"""The hivescribe command line (Typer)."""
