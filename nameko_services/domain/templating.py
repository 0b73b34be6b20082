"""Sandboxed Jinja2 for rule criteria, parameters and workflow data flow.

A value that is exactly one `{{ expr }}` keeps its JSON type; anything else renders to text.
Missing values are null, never an error; a syntax error is a TemplateError naming the expression.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import ChainableUndefined
from jinja2 import TemplateError as JinjaTemplateError

from .template_limits import SizeLimitedSandbox

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.S)



class _JsonSandbox(SizeLimitedSandbox):
    """Dot access prefers keys over attributes: `params.items` is the parameter, not dict.items.

    Sizes are bounded too (template_limits): a template cannot make a service build huge values.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


_env = _JsonSandbox(undefined=ChainableUndefined, autoescape=False)


class TemplateError(Exception):
    """A template that does not parse or cannot be evaluated; the message names the expression."""

    def __init__(self, expression: str, reason: str) -> None:
        super().__init__(f"Template error in {expression!r}: {reason}")
        self.expression = expression
        self.reason = reason


class DatastoreView:
    """`datastore.<key>` in templates; dotted keys (`config.api_url`) resolve level by level.

    Values are loaded on first use through `loader` so templates that never touch the
    datastore cost no query.
    """

    def __init__(self, loader: Callable[[], Mapping[str, Any]], prefix: str = "") -> None:
        self._loader = loader
        self._prefix = prefix
        self._cache: Mapping[str, Any] | None = None

    def _items(self) -> Mapping[str, Any]:
        if self._cache is None:
            self._cache = self._loader()
        return self._cache

    def __getitem__(self, name: str) -> Any:
        key = f"{self._prefix}{name}"
        items = self._items()
        if key in items:
            return items[key]
        if any(k.startswith(key + ".") for k in items):
            view = DatastoreView(self._loader, key + ".")
            view._cache = items
            return view
        return None

    __getattr__ = __getitem__


def _strip_braces(expression: str) -> str:
    match = _SINGLE_EXPRESSION.match(expression)
    return match.group("expr").strip() if match else expression.strip()


def check_expression(expression: str) -> None:
    """Raise TemplateError when a criteria expression does not compile."""
    try:
        _env.compile_expression(_strip_braces(expression))
    except JinjaTemplateError as exc:
        raise TemplateError(expression, str(exc)) from exc


def check_template(value: Any) -> None:
    """Raise TemplateError for the first string (at any depth) that does not compile."""
    if isinstance(value, str):
        match = _SINGLE_EXPRESSION.match(value)
        try:
            if match:
                _env.compile_expression(match.group("expr").strip())
            elif "{{" in value or "{%" in value:
                _env.from_string(value)
        except JinjaTemplateError as exc:
            raise TemplateError(value, str(exc)) from exc
    elif isinstance(value, Mapping):
        for item in value.values():
            check_template(item)
    elif isinstance(value, list):
        for item in value:
            check_template(item)


def _native(value: Any) -> Any:
    if isinstance(value, ChainableUndefined):
        return None
    if isinstance(value, DatastoreView):
        return {k[len(value._prefix):]: v for k, v in value._items().items()
                if k.startswith(value._prefix)}
    return value


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate one expression (braces optional) to a native value; undefined → None."""
    try:
        compiled = _env.compile_expression(_strip_braces(expression), undefined_to_none=False)
        return _native(compiled(**context))
    except JinjaTemplateError as exc:
        raise TemplateError(expression, str(exc)) from exc
    except Exception as exc:  # evaluation errors inside user expressions (e.g. 1/0, None > 3)
        raise TemplateError(expression, f"{type(exc).__name__}: {exc}") from exc


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string in a JSON value; a lone `{{ expr }}` keeps the expression's type."""
    if isinstance(value, str):
        match = _SINGLE_EXPRESSION.match(value)
        if match:
            return evaluate(match.group("expr"), context)
        if "{{" not in value and "{%" not in value:
            return value
        try:
            return _env.from_string(value).render(**context)
        except JinjaTemplateError as exc:
            raise TemplateError(value, str(exc)) from exc
        except Exception as exc:
            raise TemplateError(value, f"{type(exc).__name__}: {exc}") from exc
    if isinstance(value, Mapping):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value

