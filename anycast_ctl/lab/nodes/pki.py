"""The lab's certificates: one CA made at `up`, one certificate per TLS backend, and one client
certificate per client when a VIP requires client certificates.

Each backend's certificate names the TLS names of every VIP it serves (its SANs), so a client
that connects to a VIP and checks the certificate against the lab CA and the VIP's TLS name
proves the whole path: the LB nodes pass the TLS stream through and never hold a key.

What to issue comes from the rendering (`render.node_files.CertRequest`); `issue_requests`
makes the CA and the certificates in memory (time passed in, keys random) and the lab's file
writer (lab/nodes/files.py) puts them under the state dir, keys 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from anycast_ctl.render.node_files import CA_FILE, CertRequest

VALIDITY = dt.timedelta(days=2)  # a lab lives minutes; short validity leaves nothing worth stealing
# `lab up --cert-days` may shorten it (to cross a node's certificate thresholds on purpose), to
# no less than this: the certificates must outlive the lab's bring-up.
MIN_VALIDITY = dt.timedelta(minutes=10)
BACKDATE = dt.timedelta(minutes=5)  # tolerate a little clock skew between namespaces' readers


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())  # fast to make; every TLS stack speaks it


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "anycast-ctl lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(
    lab: str, now: dt.datetime, validity: dt.timedelta = VALIDITY
) -> tuple[Issued, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    name = _name(f"anycast-ctl lab CA {lab}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + max(validity, VALIDITY))  # the CA never expires first
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)), key, cert


def issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    dns_names: list[str],
    ip_addresses: list[str],
    now: dt.datetime,
    client: bool = False,
    validity: dt.timedelta = VALIDITY,
) -> Issued:
    """A server certificate for `dns_names` (SANs; the CN is informational only), or with
    `client` a client certificate for the CN (clientAuth, no SANs)."""
    key = _key()
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = (
        builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_requests(
    requests: dict[str, CertRequest],
    lab: str,
    now: dt.datetime,
    validity: dt.timedelta = VALIDITY,
) -> dict[str, bytes]:
    """A fresh CA and every requested certificate, each valid `validity` from `now`: map key
    -> PEM bytes (the CA certificate under CA_FILE; the CA's key is dropped here, so nothing
    more can ever be issued)."""
    if validity < MIN_VALIDITY:
        raise ValueError(f"certificate validity {validity} is under {MIN_VALIDITY}")
    ca, ca_key, ca_cert = make_ca(lab, now, validity)
    out = {CA_FILE: ca.cert_pem}
    for request in requests.values():
        issued = issue(
            ca_key,
            ca_cert,
            request.node,
            list(request.dns_names),
            list(request.ip_addresses),
            now,
            client=request.client,
            validity=validity,
        )
        out[request.cert], out[request.key] = issued.cert_pem, issued.key_pem
    return out
