"""The sensor service room."""
