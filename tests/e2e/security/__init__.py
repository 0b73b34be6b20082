"""The hostile-tenant suite."""
