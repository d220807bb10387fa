"""The renewal rule (local + RFC 9773 ARI), in one place."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.portail.https.plugins.module_utils._acme.ari import RenewalInfo
from ansible_collections.portail.https.plugins.plugin_utils import _renewal as rn

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def state(names=("www.example.org",), key_type="ec256", days_left=60.0, lifetime=90.0, matches=True):
    not_after = NOW + datetime.timedelta(days=days_left)
    not_before = not_after - datetime.timedelta(days=lifetime)
    return {
        "missing_files": [],
        "problems": [],
        "key": {"key_type": key_type},
        "cert": {
            "names": list(names),
            "not_before": not_before.isoformat(),
            "not_after": not_after.isoformat(),
            "serial": "87654321",
            "aki": "69885b6b87464041e1b37b847ba0ae2cde01c8d4",
            "matches_key": matches,
        },
    }


def decide(st, **kw):
    base = {
        "names": ["www.example.org"],
        "key_type": "ec256",
        "fraction": 1 / 3,
        "force": False,
        "cert_path": "/c",
        "key_path": "/k",
        "now": NOW,
    }
    base.update(kw)
    return rn.decide(st, **base)


@pytest.mark.parametrize(
    ("st", "kw", "reason"),
    [
        (state(), {}, rn.VALID),
        ({"missing_files": ["/c"], "cert": None}, {}, rn.MISSING),
        ({"missing_files": [], "cert": None, "problems": ["unreadable"]}, {}, rn.MISSING),
        (state(names=("old.example.org",)), {}, rn.NAMES_CHANGED),
        (state(key_type="rsa2048"), {}, rn.KEY_TYPE_CHANGED),
        (state(matches=False), {}, rn.KEY_MISMATCH),
        (state(days_left=29), {}, rn.EXPIRING),
        (state(days_left=31), {}, rn.VALID),
        (state(days_left=50), {"fraction": 0.6}, rn.EXPIRING),
        (state(days_left=-1), {}, rn.EXPIRING),
        (state(), {"force": True}, rn.FORCED),
        # 160-hour certificates renew at half their lifetime, whatever the fraction says
        (state(days_left=3.4, lifetime=160 / 24), {}, rn.VALID),
        (state(days_left=3.2, lifetime=160 / 24), {}, rn.EXPIRING),
        (state(days_left=3.2, lifetime=160 / 24), {"fraction": 0.6}, rn.EXPIRING),
    ],
)
def test_local_rule(st, kw, reason):
    assert decide(st, **kw).reason == reason


def test_names_changed_message_lists_added_and_dropped():
    d = decide(state(names=("www.example.org", "gone.example.org")), names=["www.example.org", "new.example.org"])
    assert "adds new.example.org" in d.msg and "drops gone.example.org" in d.msg


def test_renew_at_is_the_local_threshold():
    d = decide(state(days_left=60, lifetime=90))
    assert d.renew_at == NOW + 60 * DAY - 30 * DAY
    short = decide(state(days_left=6, lifetime=6.66))
    assert abs((short.renew_at - (NOW + 6 * DAY - 3.33 * DAY)).total_seconds()) < 1


def test_cert_id_rfc9773_example():
    # RFC 9773 section 4.1: AKI 69:88:5B:...:C8:D4, serial 00:87:65:43:21
    assert rn.cert_id(state()["cert"]) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    assert rn.cert_id({"serial": "01"}) is None


def window(start, end, cid="aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"):
    return RenewalInfo.from_document(cid, {"suggestedWindow": {"start": start, "end": end}})


def test_ari_point_is_random_in_the_window_but_stable_across_runs():
    a = window("2026-11-22T00:00:00Z", "2026-11-26T00:00:00Z")
    b = window("2026-11-22T00:00:00Z", "2026-11-26T00:00:00Z")
    assert a.selected == b.selected  # the same point at every scheduled run
    assert a.start <= a.selected <= a.end
    # over many certificates the points spread over the window instead of bunching at its start
    points = [window("2026-11-22T00:00:00Z", "2026-11-26T00:00:00Z", cid=f"id{i}").selected for i in range(400)]
    first_day = sum(p < a.start + DAY for p in points)
    assert 60 < first_day < 140  # a quarter of the window holds about a quarter of the points
    moved = window("2026-11-22T00:00:00Z", "2026-11-27T00:00:00Z")
    assert moved.selected != a.selected


def test_ari_decision():
    valid = decide(state())
    info = window("2026-11-22T00:00:00Z", "2026-11-26T00:00:00Z")
    d = rn.ari(valid, info, info.selected - datetime.timedelta(seconds=1))
    assert d.reason == rn.VALID and d.renew_at == info.selected and "ARI window" in d.msg
    d = rn.ari(valid, info, info.selected)
    assert d.reason == rn.ARI_WINDOW and "point picked" in d.msg
    d = rn.ari(valid, info, info.end + DAY)
    assert d.reason == rn.ARI_WINDOW and "has passed" in d.msg


def test_ari_document_without_window_is_an_error():
    from ansible_collections.portail.https.plugins.module_utils._acme.errors import AcmeError

    with pytest.raises(AcmeError, match="suggestedWindow"):
        RenewalInfo.from_document("x", {})
    with pytest.raises(AcmeError, match="suggestedWindow"):
        RenewalInfo.from_document(
            "x", {"suggestedWindow": {"start": "2026-11-26T00:00:00Z", "end": "2026-11-22T00:00:00Z"}}
        )
