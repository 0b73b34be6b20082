"""Shared fixtures. Integration tests use the `attune_test` database and vhost (never dev/e2e)."""

import eventlet

eventlet.monkey_patch()

import os  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)

from nameko_services.config import (  # noqa: E402
    AMQP_PASSWORD,
    DATABASE_PASSWORD,
    read_keys,
    with_password,
)

# The in-process services of the integration tests sign and encrypt with these; the platforms
# of the e2e tests read theirs from the keys file, as in production.
TEST_JWT_SECRET = "test-secret-" + "x" * 40
TEST_ENCRYPTION_KEYS = "test:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVoxMjM0NTY"
# Overridable so parallel runs on one machine do not share a database or vhost. The passwords
# are the generated ones of the keys file (scripts/lib.sh gives them to PostgreSQL and RabbitMQ).
_DB = os.environ.get("ATTUNE_TEST_DATABASE", "attune_test")
_VHOST = os.environ.get("ATTUNE_TEST_VHOST", "attune_test")
_KEYS = read_keys()
TEST_DATABASE_URL = with_password(f"postgresql+psycopg2://attune@127.0.0.1:5432/{_DB}",
                                  _KEYS.get(DATABASE_PASSWORD))
TEST_AMQP_URI = with_password(f"amqp://attune@127.0.0.1:5672/{_VHOST}", _KEYS.get(AMQP_PASSWORD))


@pytest.fixture
def tmp_path(tmp_path):
    """pytest's tmp_path, traversable by anyone (0711 up to the temp root, 0755 itself): a
    sandbox's uid must reach the pack folders tests write there (bwrap binds them as that uid),
    as it reaches the platform's own run dir."""
    tmp_path.chmod(0o755)
    for parent in tmp_path.parents:
        if parent == Path(tempfile.gettempdir()):
            break
        parent.chmod(0o711)
    return tmp_path


@pytest.fixture(scope="session")
def config(tmp_path_factory):
    """nameko.yaml pointed at the test database and vhost; tenants may register by path the
    example packs, the fixture packs and pytest's temporary folders (`tmp_path`) only."""
    from nameko_services.config import PROJECT_ROOT, load_config

    cfg = load_config(PROJECT_ROOT / "nameko.yaml")
    cfg["AMQP_URI"] = TEST_AMQP_URI
    cfg["ATTUNE"]["database_url"] = TEST_DATABASE_URL
    cfg["ATTUNE"]["jwt_secret"] = TEST_JWT_SECRET
    cfg["ATTUNE"]["encryption_keys"] = TEST_ENCRYPTION_KEYS
    cfg["ATTUNE"]["run_dir"] = str(PROJECT_ROOT / ".attune" / "test")
    cfg["ATTUNE"]["packs"] = {"allowed_paths": [
        "packs", "tests/fixtures/packs", str(tmp_path_factory.getbasetemp())]}
    return cfg


@pytest.fixture(scope="session")
def settings(config):
    from nameko_services.domain.settings import Settings

    return Settings.from_mapping(config)


@pytest.fixture(scope="session")
def engine(settings):
    """The test database, rebuilt from the migrations once per session."""
    from alembic.config import Config
    from sqlalchemy import text

    from alembic import command
    from nameko_services.config import PROJECT_ROOT
    from nameko_services.domain.db import make_engine

    eng = make_engine(settings.database_url)
    with eng.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    alembic_cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    alembic_cfg.attributes["database_url"] = settings.database_url
    alembic_cfg.attributes["skip_logging"] = True
    command.upgrade(alembic_cfg, "head")
    yield eng
    eng.dispose()


@pytest.fixture
def published():
    """Events the gateway would dispatch, captured instead of sent (unit/integration views)."""
    return []


@pytest.fixture
def app(config, engine, published):
    from gateway.app import create_app

    application = create_app(config, publish=lambda *args: published.append(args))
    yield application
    application.extensions["attune"].dispose()  # one pool per test, closed with it


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def open_client(config, engine, published):
    """A client of an app whose sign-up is open (nameko.yaml's, the `client` fixture's, is not)."""
    import copy

    from gateway.app import create_app

    cfg = copy.deepcopy(config)
    cfg["ATTUNE"]["auth"] = {"registration": "open"}
    application = create_app(cfg, publish=lambda *args: published.append(args))
    yield application.test_client()
    application.extensions["attune"].dispose()


@pytest.fixture
def make_user(client, engine):
    """A new tenant's admin (made as `attune create-user` makes it), or a user that an admin adds
    to its tenant; logged in over the API. Returns (user, auth headers)."""
    import uuid

    from tests.support.factories import PASSWORD, make_admin

    def make(role="admin", admin_headers=None):
        name = f"u-{uuid.uuid4().hex[:10]}"
        if admin_headers is None:
            make_admin(engine, name)
        else:
            r = client.post("/api/v1/users", headers=admin_headers,
                            json={"username": name, "password": PASSWORD, "role": role})
            assert r.status_code == 201, r.json
        r = client.post("/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.json
        data = r.json["data"]
        return data["user"], {"Authorization": f"Bearer {data['access_token']}"}

    return make
