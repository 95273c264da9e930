"""readmodel package."""
