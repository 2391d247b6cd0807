"""`hivescribe generate-cert`: a self-signed certificate for testing, or Let's Encrypt."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import subprocess
from pathlib import Path

import typer

from hivescribe.cli.common import fail


def write_self_signed(output_dir: Path, hosts: list[str], days: int = 365) -> tuple[Path, Path]:
    """Write cert.pem and key.pem (EC P-256) valid for ``hosts`` (names and IP addresses)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = output_dir / "cert.pem", output_dir / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing key.pem keeps its old mode through O_CREAT
    with os.fdopen(fd, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


def generate_cert(
    self_signed: bool = typer.Option(False, "--self-signed", help="Make a self-signed pair."),
    output_dir: Path = typer.Option(Path("./certs"), help="Where cert.pem and key.pem go."),
    host: list[str] = typer.Option(
        [], "--host", help="Extra host names or IPs for a self-signed certificate."
    ),
    domain: str | None = typer.Option(None, help="Your domain, for Let's Encrypt via certbot."),
    email: str | None = typer.Option(None, help="Your email, for Let's Encrypt via certbot."),
    days: int = typer.Option(365, min=1, max=3650, help="Validity of a self-signed cert."),
) -> None:
    """Make TLS certificates for the orchestrator.

    Testing: --self-signed --output-dir ./certs (workers then need --no-verify-ssl).
    Production: --domain your.domain --email you@domain (runs certbot; needs port 80).
    """
    if self_signed == bool(domain):
        fail("choose one: --self-signed, or --domain with --email")
    if self_signed:
        hosts = ["localhost", "127.0.0.1", "::1", socket.gethostname(), *host]
        cert, key = write_self_signed(output_dir, list(dict.fromkeys(hosts)), days)
        print(f"wrote {cert} and {key}")
        return
    if not email:
        fail("--domain needs --email for Let's Encrypt")
    certbot = shutil.which("certbot")
    if certbot is None:
        fail(
            "certbot is not installed; install it (e.g. 'apt-get install certbot' or "
            "'pip install certbot') and run this again, or use --self-signed for testing"
        )
    command = [
        certbot,
        "certonly",
        "--standalone",
        "--non-interactive",
        "--agree-tos",
        "-d",
        str(domain),
        "-m",
        email,
    ]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        fail(f"certbot failed with exit code {result.returncode}", result.returncode)
    live = Path("/etc/letsencrypt/live") / str(domain)
    print(f"certificate: {live / 'fullchain.pem'}\nkey: {live / 'privkey.pem'}")
