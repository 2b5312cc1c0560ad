# Start command of the Chroma 0.x container when tls.enabled (rendered by the chart).
#
# It takes uvicorn's own command line, plus `--tls-secret NAME`, and adds two things uvicorn
# lacks:
#   - at start, a certificate or key that cannot be used fails the container with a message
#     naming the Secret and the file, where uvicorn alone prints an OpenSSL reason only;
#   - a renewed Secret is served without a restart. The kubelet rewrites the mounted files
#     when the Secret changes; this polls them, builds a new TLS context from them exactly as
#     uvicorn built the first, and hands it to every handshake from then on (through the
#     listening context's SNI callback, which may switch a connection's context). A renewed
#     pair that does not load is logged and the pair in service is kept.
#
# Only the standard library and uvicorn, which every 0.x image has.
import hashlib
import logging
import os
import ssl
import sys
import threading
import time

import uvicorn.config
import uvicorn.main

POLL_SECONDS = 2.0


def take_flag(argv, flag):
    """Removes `flag VALUE` (or `flag=VALUE`) from argv and returns VALUE, or None."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
            del argv[i : i + 2]
            return value
        if arg.startswith(flag + "="):
            del argv[i]
            return arg[len(flag) + 1 :]
    return None


def read_flag(argv, flag):
    copy = list(argv)
    return take_flag(copy, flag)


def digest(paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def why_unusable(secret, certfile, keyfile, err):
    """One line naming the Secret, the file and what is wrong with it."""
    for path, marker, what in ((certfile, b"-----BEGIN CERTIFICATE-----", "a PEM certificate"), (keyfile, b"PRIVATE KEY-----", "a PEM private key")):
        try:
            with open(path, "rb") as f:
                if marker not in f.read():
                    return "Secret %s: %s is not %s" % (secret, path, what)
        except OSError as e:
            return "Secret %s: cannot read %s (%s)" % (secret, path, e.strerror or e)
    reason = getattr(err, "reason", None) or str(err)
    if reason == "KEY_VALUES_MISMATCH":
        return "Secret %s: tls.key (%s) does not match the certificate in tls.crt (%s)" % (secret, keyfile, certfile)
    return "Secret %s: the certificate %s and key %s cannot be used: %s" % (secret, certfile, keyfile, err)


class Follower:
    """The context new connections get: the listening one until a renewal replaces it."""

    def __init__(self, secret, paths):
        self.secret = secret
        self.paths = paths
        self.current = None
        self.loaded = None
        self.rejected = ""  # the digest last reported as unusable (None: files unreadable)
        self.log = logging.getLogger("uvicorn.error")

    def attach(self, listening, build):
        if self.current is not None:
            return
        self.current = listening
        self.loaded = digest(self.paths)
        self.build = build
        listening.sni_callback = self.pick
        threading.Thread(target=self.watch, name="tls-follow", daemon=True).start()

    def pick(self, conn, server_name, listening):
        current = self.current
        if current is not listening:
            conn.context = current
        return None

    def watch(self):
        while True:
            time.sleep(POLL_SECONDS)
            seen = None
            try:
                seen = digest(self.paths)
                if seen == self.loaded:
                    continue
                fresh = self.build()
                # The kubelet may still be writing: serve only a pair that stayed put.
                if digest(self.paths) != seen:
                    continue
            except (ssl.SSLError, OSError) as err:
                if seen != self.rejected:
                    self.rejected = seen
                    self.log.warning("renewed TLS files not used, still serving the previous certificate: %s", why_unusable(self.secret, *self.paths, err))
                continue
            self.current = fresh
            self.loaded = seen
            self.log.info("serving the renewed certificate of Secret %s from the next connection on", self.secret)


def main():
    argv = sys.argv[1:]
    secret = take_flag(argv, "--tls-secret") or "(unnamed)"
    certfile = read_flag(argv, "--ssl-certfile")
    keyfile = read_flag(argv, "--ssl-keyfile")
    if not certfile or not keyfile:
        sys.exit("uvicorn-tls: --ssl-certfile and --ssl-keyfile are both required")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as err:
        sys.exit("chromadb TLS: " + why_unusable(secret, certfile, keyfile, err))

    follower = Follower(secret, (certfile, keyfile))
    create = uvicorn.config.create_ssl_context

    def create_and_follow(*args, **kwargs):
        listening = create(*args, **kwargs)
        follower.attach(listening, lambda: create(*args, **kwargs))
        return listening

    uvicorn.config.create_ssl_context = create_and_follow
    uvicorn.main.main(args=argv, prog_name="uvicorn")


if __name__ == "__main__":
    main()
