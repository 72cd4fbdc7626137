"""Tools for development and tests: the managed local S3 server (SeaweedFS).

:class:`~ladis_core.devtools.s3server.LocalS3Server` runs ``weed mini`` on 127.0.0.1 with a
persistent data folder (``python -m ladis_core s3 start|stop|status|env``); the tests start
one on a free port per session.
"""
