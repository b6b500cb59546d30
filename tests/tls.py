"""TLS for tests that must run as deployed (shared/FIELD-TESTS.md): a local CA from PyPI
`trustme`, one server certificate for the test names, and a throw-away HOME whose NSS
database trusts the CA, so Debian's Chromium accepts the certificates like a real site's."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass
class Pki:
    """A CA and one certificate for every test name, as files."""

    dir: Path
    ca: Path
    cert: Path
    key: Path
    home: Path  # a HOME whose NSS database trusts the CA (for Chromium)

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def make_pki(names: list[str]) -> Pki:
    """A fresh CA (PyPI trustme), a certificate for `names`, and Chromium's trust in the CA."""
    directory = Path(tempfile.mkdtemp(prefix="cognate-pki-"))
    ca = trustme.CA()
    issued = ca.issue_cert(*names)
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    issued.private_key_pem.write_to_path(str(directory / "key.pem"))
    with open(directory / "cert.pem", "wb") as chain:
        for blob in issued.cert_chain_pems:
            chain.write(blob.bytes())
    home = directory / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    certutil = shutil.which("certutil")
    assert certutil, "scripts/test.sh installs libnss3-tools (certutil)"
    subprocess.run(
        [certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True, capture_output=True
    )
    subprocess.run(
        [certutil, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "cognate-test-ca", "-i"]
        + [str(directory / "ca.pem")],
        check=True,
        capture_output=True,
    )
    return Pki(directory, directory / "ca.pem", directory / "cert.pem", directory / "key.pem", home)
