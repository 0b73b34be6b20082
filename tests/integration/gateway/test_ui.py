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


@pytest.mark.parametrize("path", ["/ui/", "/ui/executions", "/ui/executions/42",
                                  "/ui/inquiries", "/ui/rules", "/ui/packs", "/ui/datastore"])
def test_console_pages_are_shells_with_the_login_form_and_no_inline_script(client, path):
    response = client.get(path)  # no token: the page holds no data
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert '<label for="username">Username</label>' in page
    assert '<label for="password">Password</label>' in page
    assert '<button type="submit">Log in</button>' in page
    assert '<script src="/ui/assets/console.js"></script>' in page
    assert page.count("<script") == 1  # the one script of this origin, nothing inline
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy


def test_the_console_script_writes_data_as_text_and_keeps_the_token_in_the_tab(client):
    response = client.get("/ui/assets/console.js")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    script = response.get_data(as_text=True)
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    assert "sessionStorage" in script and "localStorage" not in script
    assert "document.cookie" not in script


def test_unknown_pages_and_files_are_404(client):
    for path in ("/ui/secrets", "/ui/assets/nope.js", "/ui/assets/..%2F..%2Fapp.py",
                 "/api/docs/index.html", "/api/docs/..%2Fdist%2Fswagger-ui.js"):
        assert client.get(path).status_code == 404, path


def test_swagger_ui_is_served_from_the_package_over_the_openapi_document(client):
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '<script src="/api/docs/swagger-ui-bundle.js"></script>' in html
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]
    bundle = client.get("/api/docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and b"SwaggerUIBundle" in bundle.data
    assert client.get("/api/docs/swagger-ui.css").mimetype == "text/css"
    init = client.get("/ui/assets/api-docs.js").get_data(as_text=True)
    assert 'url: "/api/v1/openapi.json"' in init
