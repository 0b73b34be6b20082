"""Inquiry schemas: checked when the inquiry is created, applied to every answer."""

import pytest

from nameko_services.domain import inquiries
from nameko_services.domain.errors import ValidationError

SCHEMA = {"type": "object", "properties": {"approved": {"type": "boolean"},
                                            "env": {"enum": ["prod", "staging"]}},
          "required": ["approved"]}


def test_a_fitting_answer_has_no_errors_and_a_bad_one_names_each_field():
    assert inquiries.schema_errors(SCHEMA, {"approved": True, "env": "prod"}) == {}
    errors = inquiries.schema_errors(SCHEMA, {"approved": "yes", "env": "dev"})
    assert set(errors) == {"response.approved", "response.env"}
    assert set(inquiries.schema_errors(SCHEMA, {})) == {"response"}


def test_a_schema_that_is_not_json_schema_is_refused():
    inquiries.check_schema(SCHEMA)
    for bad in ({"type": "nonsense"}, "object", 3):
        with pytest.raises(ValidationError):
            inquiries.check_schema(bad)
