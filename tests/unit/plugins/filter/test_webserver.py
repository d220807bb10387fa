"""Filters webserver_plan and webserver_tls: errors become AnsibleFilterError, values pass through."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.portail.https.plugins.filter.webserver import FilterModule, webserver_plan, webserver_tls

from ..plugin_utils.test_webserver import SETTINGS, SITE


def test_registered() -> None:
    assert set(FilterModule().filters()) == {"webserver_plan", "webserver_tls", "webserver_os_family"}


def test_plan_through_the_filter() -> None:
    out = webserver_plan([SITE], "nginx", SETTINGS)
    assert out["present"][0]["name"] == "main"


def test_errors_become_filter_errors_that_say_nothing_changed() -> None:
    with pytest.raises(AnsibleFilterError, match="Nothing was changed"):
        webserver_plan([dict(SITE, root="x")], "nginx", SETTINGS)
    with pytest.raises(AnsibleFilterError, match="settings must be a dict"):
        webserver_plan([], "nginx", "x")


def test_tls() -> None:
    assert webserver_tls(None)["post_quantum"] is False
    assert webserver_tls("OpenSSL 3.6.0 1 Oct 2025")["groups"][0] == "X25519MLKEM768"
