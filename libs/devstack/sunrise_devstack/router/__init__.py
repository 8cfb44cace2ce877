"""The local stand-in for Eventarc: a durable delivery queue, a raw-folder watcher and a deliverer.

Routes come from :data:`sunrise_common.names.TRIGGERS`, which ``tests/terraform`` checks against
the triggers that ``terraform/`` declares.
"""
