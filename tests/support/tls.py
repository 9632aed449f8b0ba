"""A throwaway certificate for TLS tests: self-signed, valid one day, naming only `hook.test`, so a
client that checks the name against the address it dialled (127.0.0.1) fails and one that checks
it against the URL's host passes."""

from __future__ import annotations

import subprocess
from pathlib import Path

HOST = "hook.test"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """Write cert.pem and key.pem into `folder` with the openssl command; -> (cert, key)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={HOST}",
         "-addext", f"subjectAltName=DNS:{HOST}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key
