"""``policy-engine serve`` as a real process (Ctrl-C shuts it down) and ``demo`` against it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

from policy_engine.admin.cli import main
from tests.conftest import ROOT

# `policy-engine serve` started the way a terminal starts it: with Ctrl-C's SIGINT handled.
# Run where SIGINT is ignored (the suite as a background job of a script, as some CI
# runners do), a child inherits the ignoring and would never see the SIGINT below.
SERVE_AS_FROM_A_TERMINAL = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from policy_engine.admin.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_demo_against_a_running_serve_process_then_ctrl_c(capsys):
    serve = subprocess.Popen(
        [sys.executable, "-c", SERVE_AS_FROM_A_TERMINAL, "serve", "--port", "0", "--idp-port", "0", "--store", "yaml"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert serve.stdout is not None
        banner = []
        for line in serve.stdout:
            banner.append(line)
            if line.startswith("ready in"):
                break
        text = "".join(banner)
        gateway = re.search(r"API gateway\s+(http://127\.0\.0\.1:\d+)/", text)
        assert gateway, text
        # the ready-to-paste commands name the real ports
        assert f"curl -i {gateway.group(1)}/dev/pets" in text
        assert "-u pets-reader:reader-secret -d grant_type=client_credentials" in text

        assert main(["demo", "--url", gateway.group(1)]) == 0
        out = capsys.readouterr().out
        assert "every answer as expected" in out and "UNEXPECTED" not in out
    finally:
        serve.send_signal(signal.SIGINT)
        code = serve.wait(timeout=30)
        assert serve.stdout is not None
        rest = serve.stdout.read()
        serve.stdout.close()
    assert code == 0
    assert "stopping" in rest


def test_demo_starts_its_own_serve_and_exits_zero(capsys):
    assert main(["demo", "--store", "yaml"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n   ok") >= 17 and "every answer as expected" in out


def test_demo_url_that_is_not_serve_exits_2(capsys):
    assert main(["demo", "--url", "http://127.0.0.1:9"]) == 2  # nothing listens there
    assert "is not a running 'policy-engine serve'" in capsys.readouterr().err


def test_demo_with_the_cache_off_still_passes(capsys):
    assert main(["demo", "--store", "yaml", "--cache-ttl", "0"]) == 0
    assert "cache off, the authorizer runs again" in capsys.readouterr().out


def test_serve_on_a_port_in_use_exits_2(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--store", "yaml", "--port", str(port), "--idp-port", "0"]) == 2
    assert "cannot listen on 127.0.0.1:" in capsys.readouterr().err
