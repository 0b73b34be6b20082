"""GET /ui/live: the live-feed page is served without a token and locks itself down."""

import pytest

pytestmark = pytest.mark.integration


def test_the_live_page_is_public_html_that_logs_in_and_opens_the_feed(client):
    response = client.get("/ui/live")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert 'fetch("/auth/login"' in page
    assert "/ws" in page and '{action: "auth", token}' in page
    for entity_type in ("execution", "inquiry", "rule", "event"):
        assert f'value="{entity_type}"' in page
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy


def test_the_page_renders_notification_data_as_text_never_as_html(client):
    page = client.get("/ui/live").get_data(as_text=True)
    assert "innerHTML" not in page
    assert "createTextNode(summary(m))" in page
