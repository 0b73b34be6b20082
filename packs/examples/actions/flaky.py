"""examples.flaky: each attempt is its own execution; attune.context["attempt"] says which."""

import attune


def run(succeed_on=2):
    attempt = attune.context["attempt"]
    if attempt < succeed_on:
        raise RuntimeError(f"attempt {attempt} failed on purpose")
    return {"attempt": attempt}
