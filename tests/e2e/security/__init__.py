"""The hostile-tenant suite: what a freshly registered tenant tries against the platform and
the machine it runs on, each attempt refused while the platform stays healthy."""
