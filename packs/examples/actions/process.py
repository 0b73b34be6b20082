"""examples.process: one with-items child per host."""


def run(host, key):
    return {"host": host, "key_used": key[-4:], "ok": True}
