"""The last-good value and back-off shared by the permission and key caches."""

from __future__ import annotations

from policy_engine.core.lastgood import Backoff, LastGood


def test_backoff_doubles_to_its_cap_and_stays_there_for_any_outage():
    backoff = Backoff(1.0, 30.0)
    assert backoff.ready(0.0)
    delays = [backoff.failed(0.0) for _ in range(8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    for _ in range(5000):  # far past the point where 2**n stops fitting a float
        assert backoff.failed(100.0) == 30.0
    assert not backoff.ready(129.9) and backoff.ready(130.0)
    backoff.clear()
    assert backoff.ready(100.0) and backoff.failed(100.0) == 1.0


def test_equal_base_and_cap_is_a_fixed_interval():
    backoff = Backoff(20.0, 20.0)
    assert [backoff.failed(float(t)) for t in (0, 20, 40)] == [20.0, 20.0, 20.0]
    assert not backoff.ready(59.0) and backoff.ready(60.0)


def test_last_good_serves_until_max_age_after_the_last_confirmation():
    good: LastGood[str] = LastGood(300.0)
    assert not good.usable(0.0) and good.value is None
    good.confirm(10.0, "v1")
    assert good.usable(310.0) and not good.usable(310.5)
    good.confirm(200.0)  # the source says nothing changed: same value, confirmed again
    assert good.value == "v1" and good.usable(500.0) and good.age(500.0) == 300.0
    good.confirm(210.0, "v2")
    assert good.value == "v2" and good.within(510.0) and not good.within(510.5)
