"""The Sunrise dev stack: what runs the pipeline on a laptop or in the tests, never in a service
image.

- :mod:`.router` — the local stand-in for Eventarc: the durable queue's delivering side, the
  raw-folder watcher, the Pub/Sub emulator source and the deliverer;
- :mod:`.emulators` — starts fake-gcs-server and the Pub/Sub and Firestore emulators;
- :mod:`.server` — serves a service's app under uvicorn with bounded client timeouts (``sunrise run``);
- :mod:`.status` and :mod:`.dead_letters` — what ``sunrise status`` and ``sunrise dead-letters`` read.

It depends on ``sunrise-common`` only (never on a service); the CLI, the tests, the benchmarks and
the reliability harness depend on it.
"""
