"""The raw-folder watcher of the embedded backend: announce a raw file once its writer closed it.

Cloud Storage finalizes an object only when its upload is complete, and Eventarc announces it
once. The embedded raw folder (``data/buckets/{prefix}-raw``) gives the same guarantee (issue 22):

- **inotify** (Linux, through ``inotify_simple``, a thin ctypes wrapper; ``watchfiles`` does not
  expose close-write): a file is announced when its writer closes it (``IN_CLOSE_WRITE``) or
  when it is renamed into place (``IN_MOVED_TO``), never while it is being written, however long
  the writer pauses. A file made by a hard link (the local storage's create-if-absent) is
  complete at once: the storage closes a write handle on it after the link, so it gets its
  ``IN_CLOSE_WRITE`` too. A symbolic link, a FIFO or a device node has nothing to finish: it is
  announced when it appears, and ingest records why it is refused
  (:mod:`sunrise_common.storage.local`, ``not_a_regular_file``).
- **files inotify did not see being written** (there at start, in a folder just made or moved
  in, after an event-queue overflow): the kernel is asked whether any process holds the file open
  for writing (:func:`writer_holds`: a read lease, ``F_SETLEASE F_RDLCK``, is refused with
  ``EAGAIN`` exactly then). Nobody: announced now; somebody: its close announces it (the folder
  is watched before the question is asked, so that close cannot be missed).
- **quiet period**, where inotify cannot be used (another OS, a network or bind mount that sends
  no events, ``DevStackSettings.router_raw_inotify = False``), where the lease question has no answer
  (a file of another user), and for a file that appeared with neither a writer's close nor a
  rename (a hard link made by hand): announced once its size and generation (mtime or ctime) have not changed for
  ``DevStackSettings.router_raw_quiet_s`` seconds (default 10 s), its generation is at least that old and no
  writer holds it open. Under inotify a write to such a file takes it off the quiet list: its
  close will announce it.

Dot-files and names ending in ``.part`` or ``.tmp`` are uploads in progress: ignored until they
are renamed to their final name. Each announcement carries the file's generation at that moment
(:func:`~sunrise_common.storage.local.generation_of`: the later of mtime and ctime, the one the
local storage reports, so a file moved in with an older mtime still gets a newer generation); the
queue's once-per-generation guard drops repeats, and the deliverer drops a delivery whose
generation a newer one has replaced (:func:`superseded`). A change of a file's metadata
(``IN_ATTRIB``: ``chmod``, ``touch``, tar setting the times after writing) moves its ctime, hence
its generation: the file is settled again, so the new generation is announced too and the one it
replaced is never the only one delivered.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
import stat
import time
from pathlib import Path

from sunrise_devstack.settings import DevStackSettings
from sunrise_common.storage.local import LocalStorage, generation_of
from sunrise_devstack.router.queue import Delivery, Queue

logger = logging.getLogger(__name__)

# Suffixes of uploads in progress (browsers, rsync, curl, our own tools): announced once renamed.
IN_PROGRESS_SUFFIXES = (".part", ".tmp")


def in_progress(name: str) -> bool:
    """True for a path (relative to the bucket) that names an upload in progress: a dot-file or a
    file in a dot-folder, or a ``.part``/``.tmp`` name."""
    parts = name.split("/")
    return any(p.startswith(".") for p in parts) or parts[-1].lower().endswith(IN_PROGRESS_SUFFIXES)


# The signal a lease break would send: one whose default action is to do nothing (SIGIO, the
# default, kills the process). A break happens only if a writer opens the file in the
# microseconds the probe holds its lease; the writer's open then waits until the lease is released.
_LEASE_SIGNAL = signal.SIGURG


def writer_holds(path: Path) -> bool | None:
    """Whether some process holds ``path`` open for writing: True, False, or None where the
    kernel does not say (a file of another user without CAP_LEASE, leases disabled, a file
    system without leases). Not a regular file: False (there is nothing to finish).

    Linux grants a read lease (``fcntl(F_SETLEASE, F_RDLCK)``) only on a file nobody has open
    for writing, and refuses it with ``EAGAIN`` otherwise (fcntl(2), "Leases"); the probe takes
    the lease and releases it at once."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as exc:
        return False if exc.errno == errno.ELOOP else None  # a symbolic link: nothing to finish
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        try:
            fcntl.fcntl(fd, fcntl.F_SETSIG, _LEASE_SIGNAL)
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        except OSError as exc:
            return True if exc.errno == errno.EAGAIN else None
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


def superseded(settings: DevStackSettings, delivery: Delivery) -> bool:
    """True if ``delivery`` announces a raw object (embedded backend) whose file has been
    replaced by a newer generation since: that generation has, or will get, its own delivery,
    so this one must not be processed. A missing or refused file is not superseded: ingest
    records what happened to it."""
    body = delivery.body
    if settings.backend != "embedded" or body.get("kind") != "storage#object":
        return False
    bucket, name = body.get("bucket"), body.get("name")
    if bucket != settings.bucket("raw") or not isinstance(name, str):
        return False
    try:
        current = LocalStorage(settings.data_dir / "buckets").stat(bucket, name)
    except ValueError:  # not a name the storage would serve: let ingest record it
        return False
    return current is not None and str(current.generation) != str(body.get("generation"))


class RawWatcher:
    """Announces complete files of the raw bucket folder into the router's :class:`Queue`."""

    def __init__(self, settings: DevStackSettings, queue: Queue, *, use_inotify: bool | None = None) -> None:
        self.settings = settings
        self.queue = queue
        self.bucket = settings.bucket("raw")
        self.root = settings.data_dir / "buckets" / self.bucket
        self.quiet_s = settings.router_raw_quiet_s
        self._want_inotify = settings.router_raw_inotify if use_inotify is None else use_inotify
        self._inotify = None  # inotify_simple.INotify once started
        self._folders: dict[int, Path] = {}  # watch descriptor -> folder
        self._started = False
        # Files waiting out the quiet period: name -> ((generation, size), monotonic time first seen so).
        self._quiet: dict[str, tuple[tuple[int, int], float]] = {}
        # The last generation announced for each name (memory only: names are personal data).
        self._last: dict[str, int] = {}

    @property
    def mode(self) -> str:
        """``inotify`` or ``quiet-period`` (what the watcher relies on)."""
        return "inotify" if self._inotify is not None else "quiet-period"

    # -- start
    def _start(self) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        self._started = True
        if self._want_inotify:
            try:
                from inotify_simple import INotify

                self._inotify = INotify()
            except (ImportError, OSError) as exc:  # not Linux, or no inotify instances left
                logger.warning("raw watcher: inotify unavailable (%s); announcing after %.1f s of quiet",
                               type(exc).__name__, self.quiet_s)
                self._inotify = None
        if self._inotify is not None:
            return self._watch_tree(self.root)
        self._remember_tree(self.root)
        return 0

    def close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    def _watch_tree(self, top: Path) -> None:
        """Watch ``top`` and every folder below it (not dot-folders, not linked folders), then
        settle the files already there (inotify did not see them being written). Returns how
        many deliveries were queued."""
        from inotify_simple import flags

        mask = (flags.CLOSE_WRITE | flags.MOVED_TO | flags.CREATE | flags.MODIFY | flags.ATTRIB | flags.DONT_FOLLOW
                | flags.ONLYDIR)
        announced = 0
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            try:
                wd = self._inotify.add_watch(dirpath, mask)
            except OSError as exc:  # gone already, or out of watches: the quiet period covers it
                logger.warning("raw watcher: cannot watch a folder (%s); its files wait %.1f s of quiet",
                               os.strerror(exc.errno or 0), self.quiet_s)
                for fn in filenames:
                    self._remember(Path(dirpath) / fn)
                continue
            self._folders[wd] = Path(dirpath)
            for fn in filenames:
                announced += self._settle(Path(dirpath) / fn)
        return announced

    def _settle(self, path: Path) -> int:
        """A file inotify did not see being written (its folder is watched now): announced if no
        process holds it open for writing; left to its close if one does; on the quiet list if
        the kernel does not say."""
        name = path.relative_to(self.root).as_posix()
        if in_progress(name):
            return 0
        holds = writer_holds(path)
        if holds is None:
            self._remember(path)
            return 0
        return 0 if holds else self._announce(name, path)

    def _remember_tree(self, top: Path) -> None:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for fn in filenames:
                self._remember(Path(dirpath) / fn)

    def _remember(self, path: Path) -> None:
        """Put a file on the quiet list (once; its clock starts now)."""
        name = path.relative_to(self.root).as_posix()
        if not in_progress(name):
            self._quiet.setdefault(name, ((-1, -1), time.monotonic()))

    # -- polling
    def poll_once(self) -> int:
        """Handle what happened since the last call; return how many deliveries were queued."""
        announced = 0 if self._started else self._start()
        if self._inotify is not None:
            announced += self._read_events()
        else:
            self._remember_tree(self.root)
        announced += self._announce_quiet()
        return announced

    def _read_events(self) -> int:
        from inotify_simple import flags

        announced = 0
        for event in self._inotify.read(timeout=0):
            if event.mask & flags.Q_OVERFLOW:
                # Events were lost: every file is suspect again (watched folders stay watched).
                logger.warning("raw watcher: inotify queue overflowed; settling every file again")
                for dirpath, dirnames, filenames in os.walk(self.root):
                    dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                    announced += sum(self._settle(Path(dirpath) / fn) for fn in filenames)
                continue
            if event.mask & flags.IGNORED:
                self._folders.pop(event.wd, None)
                continue
            folder = self._folders.get(event.wd)
            if folder is None or not event.name:
                continue
            path = folder / event.name
            name = path.relative_to(self.root).as_posix()
            if event.mask & flags.ISDIR:
                if event.mask & (flags.CREATE | flags.MOVED_TO) and not event.name.startswith("."):
                    announced += self._watch_tree(path)
                continue
            if in_progress(name):
                continue
            if event.mask & (flags.CLOSE_WRITE | flags.MOVED_TO):
                self._quiet.pop(name, None)
                announced += self._announce(name, path, written=True)
            elif event.mask & flags.MODIFY:
                self._quiet.pop(name, None)  # a writer has it open: its close announces it
            elif event.mask & flags.ATTRIB:
                # New metadata, new ctime, new generation: announced unless a writer still has it
                # open (its close announces it); a link count change of a file being linked in
                # gives the generation its close-write announces (the queue drops the repeat).
                try:
                    mode = os.lstat(path).st_mode
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(mode):
                    announced += self._settle(path)
            elif event.mask & flags.CREATE:
                try:
                    mode = os.lstat(path).st_mode
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(mode):  # a link, a FIFO, a device: nothing to wait for
                    announced += self._announce(name, path)
                else:  # its writer's close announces it; a hard link made by hand gets the quiet period
                    self._remember(path)
        return announced

    def _announce_quiet(self) -> int:
        """Announce the files of the quiet list that have been still long enough."""
        announced = 0
        now, wall = time.monotonic(), time.time_ns()
        for name, (sig, since) in list(self._quiet.items()):
            path = self.root / name
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                del self._quiet[name]
                continue
            current = (generation_of(st), st.st_size)
            if current != sig:
                self._quiet[name] = (current, now)  # changed (or first look): the clock starts again
                continue
            if now - since >= self.quiet_s and (wall - generation_of(st)) / 1e9 >= self.quiet_s:
                if writer_holds(path):  # still open for writing, only idle: wait on
                    self._quiet[name] = (current, now)
                    continue
                del self._quiet[name]
                announced += self._announce(name, path)
        return announced

    def _announce(self, name: str, path: Path, *, written: bool = False) -> int:
        """Queue the file's current generation (once per generation, the queue's guard).

        Generations strictly increase per name: a regular file found with a generation below the
        last one announced for its name (it replaced a file whose mtime was in the future: a
        device with a fast clock), or equal to it right after a write or a rename (``written``:
        two changes within one tick of a coarse file clock), is a new file that would be dropped
        as superseded or as a repeat; its mtime is set one above that last generation first, as
        :meth:`LocalStorage.rewrite` does (the last generations are kept in memory only, so
        since the router started)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:  # renamed or removed since: its new name has its own event
            return 0
        generation = generation_of(st)
        last = self._last.get(name)
        if stat.S_ISREG(st.st_mode) and last is not None and (generation < last or (written and generation == last)):
            bumped = self._bump(path, st, last + 1)
            if bumped is None:
                return 0
            st, generation = bumped, generation_of(bumped)
        size = st.st_size if stat.S_ISREG(st.st_mode) else 0
        self._last[name] = max(generation, last or 0)
        return self.queue.enqueue_storage(self.settings, self.bucket, name, generation, size)

    @staticmethod
    def _bump(path: Path, seen: os.stat_result, mtime_ns: int) -> os.stat_result | None:
        """Set the mtime of the file ``seen`` describes (not of one that replaced it since) to
        ``mtime_ns``; its new status, or None if it is gone or cannot be changed (logged)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None  # gone or replaced by a link: the replacement has its own event
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino):
                return None  # replaced since: the replacement has its own event
            os.utime(fd, ns=(now.st_atime_ns, mtime_ns))
            return os.fstat(fd)
        except OSError as exc:
            logger.warning("raw watcher: cannot give a file a newer generation (%s); it is not announced",
                           os.strerror(exc.errno or 0))
            return None
        finally:
            os.close(fd)
