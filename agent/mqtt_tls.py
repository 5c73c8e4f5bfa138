"""TLS for the MQTT link: the client's SSL context from the profile's files, and TLS failures
turned into one line that says what to check."""

from __future__ import annotations

import ssl
from pathlib import Path

from agent.errors import ConfigError


class ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the handshake fails: paho leaves that socket to the garbage collector,
    and a daemon retrying against a broker with the wrong certificate would trail open sockets."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def tls_context(
    ca_file: str | None, client_cert: str | None, client_key: str | None
) -> ssl.SSLContext:
    """A client context that verifies the broker's certificate and host name (against
    ``ca_file``, or the system's CAs) and presents ``client_cert``/``client_key`` when given;
    :class:`ConfigError` naming the file when one is missing or unusable."""
    for what, name in (
        ("ca_file", ca_file),
        ("client_cert", client_cert),
        ("client_key", client_key),
    ):
        if name and not Path(name).is_file():
            raise ConfigError(f"MQTT TLS set-up failed: {what} {name} does not exist")
    try:
        context = ssl.create_default_context(cafile=ca_file)  # verifies host name too
    except (OSError, ValueError, ssl.SSLError) as exc:
        where = f"ca_file {ca_file}" if ca_file else "the system's CA certificates"
        raise ConfigError(f"MQTT TLS set-up failed: {where} ({exc})") from exc
    if client_cert:
        try:
            context.load_cert_chain(client_cert, client_key)
        except (OSError, ValueError, ssl.SSLError) as exc:
            key = f", client_key {client_key}" if client_key else ""
            files = f"client_cert {client_cert}{key}"
            raise ConfigError(f"MQTT TLS set-up failed: {files} ({exc})") from exc
    context.sslsocket_class = ClosingSSLSocket
    return context


def tls_reason(exc: ssl.SSLError) -> str:
    """The short reason of a TLS failure, with what to check for a certificate problem."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or "certificate verify failed"
        return f"the broker's certificate was not accepted: {why}; check mqtt.ca_file"
    return str(exc.reason or exc)
