"""TLS and mutual TLS for both channels of a task, from PEM files named in the config.

`ConfigProto(tls_cert_file=..., tls_key_file=..., tls_ca_file=...)` (or `tensorweave server
--tls-cert/--tls-key/--tls-ca`) configures a task:

- a server with a certificate and key serves gRPC and the data channel under TLS; with a CA file
  too, it requires every client to present a certificate signed by that CA (mutual TLS);
- a client (a `Session`, or a task calling its peers) verifies servers against the CA file (the
  system's roots when there is none) and presents its own certificate and key when it has them.

A field left empty in the config is read from the environment (`TENSORWEAVE_TLS_CERT`,
`TENSORWEAVE_TLS_KEY`, `TENSORWEAVE_TLS_CA`), which is how `tensorweave launch --tls-*` hands the
files to the programs it starts. A cluster normally gives every task the same three files. TLS
protects the token and tensors on the wire; the cluster token still decides who may call.
"""

import dataclasses
import os
import ssl

import grpc

from tensorweave.framework import errors

_MAX_PEM_BYTES = 1 << 20
ENV = {"tls_cert_file": "TENSORWEAVE_TLS_CERT", "tls_key_file": "TENSORWEAVE_TLS_KEY",
       "tls_ca_file": "TENSORWEAVE_TLS_CA"}


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """The PEM file paths of one task; all None means TLS is off."""

    cert: str | None = None
    key: str | None = None
    ca: str | None = None

    @property
    def enabled(self):
        return any((self.cert, self.key, self.ca))

    @property
    def serves_tls(self):
        return bool(self.cert)


def tls_files(config, environ=None):
    """The TLS files of a `tf.ConfigProto` (or dict), else of the environment; checks that a cert
    comes with its key."""
    environ = os.environ if environ is None else environ

    def get(name):
        value = config.get(name) if isinstance(config, dict) else getattr(config, name, None)
        value = value or environ.get(ENV[name])
        return os.fspath(value) if value else None
    files = TlsFiles(get("tls_cert_file"), get("tls_key_file"), get("tls_ca_file"))
    if bool(files.cert) != bool(files.key):
        raise ValueError("tls_cert_file and tls_key_file must be given together "
                         f"(got cert={files.cert!r}, key={files.key!r})")
    return files


def _read(path, what):
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_PEM_BYTES + 1)
    except OSError as e:
        raise errors.NotFoundError(None, None, f"Cannot read the TLS {what} file {path!r}: {e}") from None
    if len(data) > _MAX_PEM_BYTES or b"-----BEGIN" not in data:
        raise errors.InvalidArgumentError(None, None, f"TLS {what} file {path!r} is not a PEM file")
    return data


def grpc_server_credentials(files):
    """Server credentials for `add_secure_port`, or None when this task serves without TLS."""
    if not files.serves_tls:
        return None
    ca = _read(files.ca, "CA") if files.ca else None
    return grpc.ssl_server_credentials([(_read(files.key, "key"), _read(files.cert, "certificate"))],
                                       root_certificates=ca, require_client_auth=ca is not None)


def grpc_channel_credentials(files):
    """Channel credentials for calling a TLS server, or None when TLS is off."""
    if not files.enabled:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(files.ca, "CA") if files.ca else None,
        private_key=_read(files.key, "key") if files.key else None,
        certificate_chain=_read(files.cert, "certificate") if files.cert else None)


def _ssl_error(e, files):
    return errors.InvalidArgumentError(None, None, f"Bad TLS files {files}: {e}")


def server_ssl_context(files):
    """The data channel server's `ssl.SSLContext`, or None when this task serves without TLS."""
    if not files.serves_tls:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(files.cert, files.key)
        if files.ca:
            context.load_verify_locations(files.ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as e:
        raise _ssl_error(e, files) from None
    return context


def client_ssl_context(files):
    """The data channel client's `ssl.SSLContext` (verifies the server), or None when TLS is off."""
    if not files.enabled:
        return None
    try:
        context = ssl.create_default_context(cafile=files.ca)
        if files.cert:
            context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as e:
        raise _ssl_error(e, files) from None
    return context
