"""Loopback servers and a scripted resolver for the egress tests (:mod:`shared.http_egress`).

* :class:`Recorder` — an HTTP server on a given loopback address that records every request
  and answers either ``status`` with a ``Location`` (a provider turned redirector) or 200 JSON.
* :class:`Listener` — a bare TCP listener that records whether anything connected at all (the
  address a rebinding attacker wants keyway to reach; TLS never gets that far).
* :class:`ScriptedDns` — answers for one test host name, a different list on each lookup; other
  names go to the real resolver. It is installed as ``socket.getaddrinfo`` — the process-wide
  resolver urllib3 and :func:`shared.providers.ssrf.default_resolver` both call — because code
  before the egress door had no way to inject one; system DNS is never touched.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Recorder:
    def __init__(self, host: str = "127.0.0.1", *, status: int = 200,
                 location: str | None = None, port: int = 0) -> None:
        self.status, self.location = status, location
        self.requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._server.server_address[0]}:{self.port}"

    def start(self) -> Recorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.requests.append({"method": self.command, "path": self.path,
                                       "host": self.headers.get("Host"),
                                       "body": self.rfile.read(length).decode(errors="replace")})
                body = json.dumps({"access_token": "gho_" + "r" * 36, "id": 1,
                                   "login": "x"}).encode()
                self.send_response(outer.status)
                if outer.location:
                    self.send_header("Location", outer.location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = do_PUT = _answer

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        return Handler


class Listener:
    """Accepts TCP connections on ``host`` and counts them; never answers."""

    def __init__(self, host: str = "127.0.0.2", port: int = 0) -> None:
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(0.05)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    def start(self) -> Listener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()


class ScriptedDns:
    """``answers[i]`` for the i-th lookup of ``name`` (the last list repeats)."""

    def __init__(self, name: str, *answers: list[str]) -> None:
        self.name, self.answers, self.lookups = name, answers, 0
        self._real = socket.getaddrinfo

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if str(host).lower().rstrip(".") != self.name:
            return self._real(host, port, *args, **kwargs)
        answer = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, int(port or 0), 0, 0))
                if ":" in a else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, int(port or 0)))
                for a in answer]


def self_signed(name: str, directory: Any) -> tuple[str, str]:
    """``(cert_path, key_path)`` of a self-signed certificate for ``name`` (also its own CA)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = f"{directory}/cert.pem", f"{directory}/key.pem"
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class TlsRecorder(Recorder):
    """:class:`Recorder` over TLS with the certificate at ``cert_path``; records the SNI."""

    def __init__(self, cert_path: str, key_path: str, host: str = "127.0.0.1") -> None:
        import ssl

        super().__init__(host)
        self.sni: list[str | None] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        context.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)

    @property
    def url(self) -> str:
        return f"https://{self._server.server_address[0]}:{self.port}"
