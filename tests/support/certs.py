"""A self-signed certificate for 127.0.0.1 and localhost, made for a test's TLS server (with `openssl`)."""

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificate:
    # PEM files: the certificate (also the CA file that trusts it) and its key.
    cert: Path
    key: Path


def self_signed(folder: Path, name: str = "Offload test SMTP") -> Certificate:
    """A key and a self-signed certificate for 127.0.0.1 and localhost, valid for a day, written into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    found = Certificate(folder / "cert.pem", folder / "key.pem")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "1", "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(found.key), "-out", str(found.cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return found
