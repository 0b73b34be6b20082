"""The worker service room."""
