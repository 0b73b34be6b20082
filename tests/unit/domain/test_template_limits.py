"""Hostile templates fail safely: no sandbox escape, no huge values built by a service."""

import pytest

from nameko_services.domain import rules, templating

CONTEXT = {"trigger": {"data": {"n": 2}, "id": 1, "ref": "t"}, "event": {"id": 1},
           "datastore": {}, "params": {"x": "y"}}

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ (1).__class__.__base__.__subclasses__() }}",
    "{{ joiner.__init__.__globals__.__builtins__.open('/etc/passwd').read() }}",
]

AMPLIFIERS = [
    "{{ 'a' * 10**9 }}",
    "{{ [1] * 10**9 }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'x'|indent(10**9) }}",
    "{{ '%999999999d' % 1 }}",
    "{{ '%999999999d'|format(1) }}",
    "{{ '%*d'|format(999999999, 1) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ ('a' * 100000).replace('a', 'a' * 100000) }}",
    "{{ ('a' * 100000)|replace('a', 'a' * 100000) }}",
    "{{ (','* 900000).join(['a'] * 900000) }}",
    "{{ 2 ** 100000000 }}",
    "{{ range(10**10)|list }}",
]


@pytest.mark.parametrize("expression", ESCAPES + AMPLIFIERS)
def test_a_hostile_criteria_is_an_evaluation_error_never_a_match(expression):
    decision = rules.evaluate(expression, {"x": "never rendered"}, CONTEXT)
    assert decision.matched is False
    assert decision.error and "Template error" in decision.error


@pytest.mark.parametrize("expression", ESCAPES + AMPLIFIERS)
def test_a_hostile_parameter_template_fails_to_render(expression):
    with pytest.raises(templating.TemplateError):
        templating.render({"x": expression, "y": f"prefix {expression}"}, CONTEXT)


@pytest.mark.parametrize(("expression", "expected"), [
    ("{{ 'ab' * 3 }}", "ababab"),
    ("{{ '%05d' % 42 }}", "00042"),
    ("{{ '{:>4}'.format('a') }}", "   a"),
    ("{{ 'a,b'.replace(',', ';') }}", "a;b"),
    ("{{ '-'.join(['a', 'b']) }}", "a-b"),
    ("{{ 'x'|center(5) }}", "  x  "),
    ("{{ 2 ** 10 }}", 1024),
    ("{{ trigger.data.n * 21 }}", 42),
])
def test_ordinary_templates_still_work(expression, expected):
    assert templating.render(expression, CONTEXT) == expected
