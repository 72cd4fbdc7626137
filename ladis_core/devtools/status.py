"""What is known about a managed local S3 server (``python -m ladis_core s3 status``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServerStatus:
    """What is known about a managed server, from its PID file and a probe of its port.

    ``running``: the process in the PID file is alive and is this folder's ``weed``;
    ``answering``: something accepts connections on the S3 port.
    """

    running: bool
    answering: bool
    pid: int | None
    host: str
    port: int
    bucket: str
    data_dir: Path
    log_path: Path
    detail: str = ""

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe(self) -> str:
        """One line for people (``python -m ladis_core s3 status``)."""
        if self.running:
            state = "running" if self.answering else "starting or unresponsive"
            text = (
                f"LADIS S3 server {state} at {self.endpoint_url} (pid {self.pid}, "
                f"bucket s3://{self.bucket}/, data {self.data_dir})"
            )
        else:
            text = f"LADIS S3 server not running (data {self.data_dir})"
        return f"{text}; {self.detail}" if self.detail else text
