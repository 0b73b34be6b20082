"""Who listens to a tenant's news (domain/presence.py): the services' table and the gateway's
announcements, on a clock the tests move."""

import pytest

from nameko_services.domain import presence
from nameko_services.domain.errors import ConfigurationError
from nameko_services.domain.settings import Settings

INTERVAL = 5.0
T, OTHER = 1, 2


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def heard(listeners, *tenants):
    listeners.heard(presence.announcement(tenants, INTERVAL))


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def learned(clock):
    """A table past its first two intervals, having heard a round without T."""
    listeners = presence.Listeners(INTERVAL, clock)
    heard(listeners)
    clock.now += 2 * INTERVAL
    heard(listeners, OTHER)
    return listeners


def test_a_new_process_publishes_everything_until_it_heard_a_whole_round(clock):
    listeners = presence.Listeners(INTERVAL, clock)
    heard(listeners, OTHER)
    clock.now += 2 * INTERVAL - 0.1
    assert listeners.listening(T)  # still learning: another gateway may not have spoken yet
    clock.now += 0.2
    heard(listeners, OTHER)
    assert not listeners.listening(T)
    assert listeners.listening(OTHER)
    assert listeners.knows()


def test_an_announced_tenant_is_listened_to_for_three_intervals(learned, clock):
    heard(learned, T)
    clock.now += 3 * INTERVAL - 0.1
    heard(learned)  # the other gateways go on announcing, without T
    assert learned.listening(T)
    clock.now += 0.2
    assert not learned.listening(T)


def test_without_any_announcement_for_three_intervals_it_fails_open(learned, clock):
    """No gateway, or this process's broker connection lost: it cannot know, so it publishes."""
    assert not learned.listening(T)
    clock.now += 3 * INTERVAL + 0.1
    assert learned.listening(T)
    assert not learned.knows()


def test_after_a_silence_the_first_announcement_starts_a_new_round(learned, clock):
    clock.now += 10 * INTERVAL
    heard(learned, OTHER)  # one gateway back; another may speak within an interval
    assert learned.listening(T)
    clock.now += INTERVAL + 0.1
    heard(learned, OTHER)
    assert not learned.listening(T)


def test_news_without_a_tenant_and_malformed_announcements(learned):
    assert learned.listening(None)  # not a tenant's news: never held back
    learned.heard({"tenants": ["x"]})
    learned.heard({"tenants": 5})
    assert not learned.listening(T)


def test_the_gateway_announces_an_arrival_at_once_but_not_twice_in_an_interval(clock):
    sent = []
    announcer = presence.Presence(sent.append, INTERVAL, clock)
    announcer.arrived(T)
    announcer.arrived(T)
    clock.now += INTERVAL / 2
    announcer.arrived(OTHER)
    assert sent == [{"tenants": [T], "interval_seconds": INTERVAL},
                    {"tenants": [OTHER], "interval_seconds": INTERVAL}]
    clock.now += INTERVAL
    announcer.arrived(T)  # its last announcement is an interval old: again
    assert len(sent) == 3


def test_the_gateway_announces_every_interval_even_no_tenant(clock):
    sent = []
    announcer = presence.Presence(sent.append, INTERVAL, clock)
    announcer.tick({T, OTHER})
    announcer.arrived(T)  # just announced by the tick
    announcer.tick(set())
    assert sent == [{"tenants": [T, OTHER], "interval_seconds": INTERVAL},
                    {"tenants": [], "interval_seconds": INTERVAL}]


def test_settings_of_the_news_block(config):
    assert Settings.from_mapping(config).news == presence.NewsSettings()
    parsed = presence.NewsSettings.from_mapping({"publish_unwatched": "true",
                                                 "interval_seconds": "0.5"})
    assert parsed == presence.NewsSettings(publish_unwatched=True, interval_seconds=0.5)
    with pytest.raises(ConfigurationError, match="interval_seconds"):
        presence.NewsSettings.from_mapping({"interval_seconds": 0})
    with pytest.raises(ConfigurationError, match="publish_unwatchd"):
        presence.NewsSettings.from_mapping({"publish_unwatchd": True})
