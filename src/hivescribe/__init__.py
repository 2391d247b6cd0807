"""hivescribe: AI media work across many machines, never losing or doubling a result."""

__version__ = "0.1.0"

__all__ = ["__version__"]
