"""Whether a download host answers, asked quickly: tfds and huggingface_hub each retry for long
before they give up, so an offline machine learns it in seconds instead."""

import socket
import threading
import urllib.parse
import urllib.request

PROBE_TIMEOUT = 3.0  # seconds to open a connection to the download host


def can_connect(url, timeout=PROBE_TIMEOUT):
    """True when a TCP connection to the host of `url` (or to the HTTPS proxy, when one is set) opens
    within `timeout` seconds, name lookup included."""
    target = urllib.parse.urlsplit(urllib.request.getproxies().get("https") or url)
    reached = []

    def probe():
        try:
            socket.create_connection((target.hostname, target.port or 443), timeout=timeout).close()
            reached.append(True)
        except (OSError, UnicodeError):
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(reached)
