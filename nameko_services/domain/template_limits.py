"""Size limits for the Jinja2 sandbox: a tenant's template may not make the services build huge
values (`'a' * 10**9`, `'x'.ljust(10**9)`, `'%999999999d' % 1`, `s.replace('a', s)`).

Jinja2's sandbox already refuses attribute escapes (`__class__`, `__globals__`...) and ranges
over 100,000; these checks close the amplification operators it leaves open. Each refusal is a
`SecurityError`, which templating reports as a TemplateError (a rule does not match, a render
fails) instead of a service stalling or running out of memory.
"""

from __future__ import annotations

import re
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.filters import do_center, do_format, do_indent, do_replace
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_SIZE = 1_000_000  # characters or items one template operation may produce
MAX_EXPONENT = 10_000
# The width/precision part of `%-10.3f` and of `{:>10}` / `{0:.3}`.
_PERCENT_SPEC = re.compile(r"%[-+ #0]*(\*|\d*)(?:\.(\*|\d*))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")
_DIGITS = re.compile(r"\d+")
# str methods whose integer arguments are output sizes.
_SIZED_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


def _too_big(size: int, what: str) -> SecurityError:
    return SecurityError(f"{what} would build {size} items; the limit is {MAX_SIZE}")


def check_repeat(left: Any, right: Any) -> None:
    """`seq * n` / `n * seq`."""
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(times, int):
            size = len(seq) * times
            if size > MAX_SIZE:
                raise _too_big(size, "repetition")


def check_power(left: Any, right: Any) -> None:
    """`a ** b` with a huge exponent takes unbounded time and memory."""
    if isinstance(right, int | float) and abs(right) > MAX_EXPONENT and abs(left) > 1:
        raise SecurityError(f"exponent {right} is over the limit {MAX_EXPONENT}")


def check_format(template: Any) -> None:
    """Widths and precisions in `%`/`format` strings are sizes too (`*` widths are refused)."""
    if not isinstance(template, str):
        return
    specs = [part for match in _PERCENT_SPEC.finditer(template) for part in match.groups()]
    specs += _BRACE_SPEC.findall(template)
    for spec in specs:
        if spec and "*" in spec:
            raise SecurityError("a '*' width in a format string is not allowed in templates")
        for digits in _DIGITS.findall(spec or ""):
            if len(digits) > 7 or int(digits) > MAX_SIZE:
                raise _too_big(int(digits[:18]), "format width")


def check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        hits = len(text) + 1 if old == "" else text.count(old)
        size = len(text) + hits * max(0, len(new) - len(old))
        if size > MAX_SIZE:
            raise _too_big(size, "replace")


def _check_sizes(args: tuple[Any, ...]) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and arg > MAX_SIZE:
            raise _too_big(arg, "padding")


def _center(value: Any, width: int = 80) -> str:
    _check_sizes((width,))
    return do_center(value, width)


def _indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> str:
    _check_sizes((width,))
    if isinstance(width, str):
        check_repeat(width, str(value).count("\n") + 1)
    return do_indent(value, width, *args, **kwargs)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    check_format(value)
    return do_format(value, *args, **kwargs)


def _replace(eval_ctx: Any, value: Any, old: Any, new: Any, count: Any = None) -> Any:
    check_replace(str(value), old, new)
    return do_replace(eval_ctx, value, old, new, count)


_replace.jinja_pass_arg = do_replace.jinja_pass_arg  # type: ignore[attr-defined]


class SizeLimitedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the amplifying operators, methods and filters bounded."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters.update(center=_center, indent=_indent, format=_format, replace=_replace)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            check_repeat(left, right)
        elif operator == "**":
            check_power(left, right)
        elif operator == "%":
            check_format(left)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Any:
        """`'{:>999999999}'.format(1)`: Jinja wraps str.format on access, so check it here."""
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str) and getattr(value, "__name__", "") in ("format", "format_map"):
            check_format(owner)
        return super().wrap_str_format(value)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            if name in _SIZED_METHODS:
                _check_sizes(args)
            elif name == "replace" and len(args) >= 2:
                check_replace(owner, args[0], args[1])
            elif name == "join":
                items = args[0] if args else ()
                if isinstance(items, list | tuple):
                    size = sum(len(i) for i in items if isinstance(i, str))
                    size += len(owner) * max(0, len(items) - 1)
                    if size > MAX_SIZE:
                        raise _too_big(size, "join")
        return super().call(__context, __obj, *args, **kwargs)
