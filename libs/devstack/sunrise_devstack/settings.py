"""Settings of the local stack (the router, the launcher and the reliability suite's fault
injection): the shared ``sunrise_common.settings.Settings`` plus what only the dev stack reads.

The variables keep their names (``SUNRISE_ROUTER_*``, ``SUNRISE_FAULT_*``,
``SUNRISE_DEAD_LETTER_RETENTION_S``): the class has the base's ``SUNRISE_`` prefix. A service reads
the base class only, so none of these knobs exists in a deployed service (issue 25, item 3).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from sunrise_common.settings import Settings


class DevStackSettings(Settings):
    """:class:`~sunrise_common.settings.Settings` plus the local router's delivery semantics and
    fault injection (the variables are listed in README.md, "Layout")."""

    # Delivery semantics of the local router (Eventarc: 10 s -> 600 s backoff for 24 h).
    router_poll_s: float = 0.3
    router_backoff_initial_s: float = 1.0
    router_backoff_max_s: float = 30.0
    # 12 attempts at 1, 2, 4 ... 30 s span about 210 s: longer than a lease (lease_s), so a run
    # orphaned by a crash is taken over by a retry before its event is dead-lettered.
    router_max_attempts: int = 12
    router_max_in_flight: int = 4
    # A delivery marked in flight that no delivery thread holds (its outcome could not be written:
    # a full disk) is due again this many seconds after it was taken (at-least-once, like a lost ack).
    router_in_flight_deadline_s: float = Field(60.0, gt=0)
    # Announce new raw files (embedded). Off for pure backfill runs, where `sunrise backfill` sends them.
    router_watch_raw: bool = True
    # How the raw watcher knows a file is complete (sunrise_devstack.router.watcher): inotify's
    # close-write and moved-to events; where those are unavailable, and for files inotify cannot
    # vouch for, this many seconds without a change of size or mtime.
    router_raw_inotify: bool = True
    router_raw_quiet_s: float = Field(10.0, ge=0.0)
    # Fault injection (reliability suite only; sunrise_devstack.faults): probability that a port call fails transiently,
    # and delivery chaos in the local router (every event N times, in shuffled order).
    fault_rate: float = Field(0.0, ge=0.0, le=1.0)
    fault_seed: int = 0
    fault_ports: str = "storage,state,publisher"
    # How long the local router keeps a dead letter (with its request, raw object name included)
    # for replay: 7 days, as the cloud dead-letter subscription (terraform/pubsub.tf).
    dead_letter_retention_s: float = Field(7 * 24 * 3600.0, gt=0)
    router_duplicates: int = Field(1, ge=1, le=10)
    router_shuffle: bool = False


@lru_cache(maxsize=1)
def get_devstack_settings() -> DevStackSettings:
    """The dev stack's settings from the environment, read once per process."""
    return DevStackSettings()
