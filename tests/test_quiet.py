"""Paddle's log noise stays out of the terminal unless verbose."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    from zoo import quiet
    quiet.configure(verbose={verbose})
    import paddle
    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", [None, 2], "float32")
        y = paddle.static.nn.fc(x, 2)
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)  # the executor logs an INFO line through GLOG
    with quiet.silenced():
        print("inside-silenced")
        print("inside-silenced-stderr", file=sys.stderr)
    print("after-silenced")
    """
)

GLOG = re.compile(r"^[IWE]\d{4} \d\d:\d\d:\d\d", re.M)


def _run(verbose: bool) -> subprocess.CompletedProcess:
    # a clean environment: an earlier CLI test in this process may have set the quiet GLOG variables
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GLOG_", "FLAGS_call_stack"))}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.format(verbose=verbose)], capture_output=True, text=True, timeout=120, env=env
    )


def test_quiet_hides_paddle_logs_and_silenced_output() -> None:
    proc = _run(verbose=False)
    assert proc.returncode == 0, proc.stderr
    assert "after-silenced" in proc.stdout
    assert "inside-silenced" not in proc.stdout + proc.stderr
    assert not GLOG.search(proc.stderr), proc.stderr


def test_verbose_lets_output_through() -> None:
    proc = _run(verbose=True)
    assert proc.returncode == 0, proc.stderr
    assert "inside-silenced" in proc.stdout
    assert GLOG.search(proc.stderr), "the executor's GLOG line should show when verbose"


SCOPED = textwrap.dedent(
    """
    import os, sys
    from zoo import quiet
    quiet.configure(verbose=False)
    with quiet.silenced():
        os.write(2, b"c-level-noise\\n")
        with quiet.audible():
            print("progress-line", file=sys.stderr)
        with quiet.silenced():
            print("nested-noise")
        print("still-silenced")
    try:
        with quiet.silenced():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    os.write(2, b"after-error\\n")
    print("after-error-stdout")
    """
)


def test_silenced_is_scoped_and_lets_progress_through() -> None:
    proc = subprocess.run([sys.executable, "-c", SCOPED], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["progress-line", "after-error"]  # noise dropped, progress and later output kept
    assert proc.stdout.splitlines() == ["after-error-stdout"]


def test_known_paddle_noise_is_filtered_by_message_only(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import warnings

    from zoo import quiet

    monkeypatch.setattr(warnings, "filters", list(warnings.filters))
    quiet.configure(verbose=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # below the zoo's own filters: what they do not cover is recorded
        for message in quiet._KNOWN_NOISE:
            quiet.configure(verbose=False)  # configure puts its filters in front again
            warnings.warn(message + ".", UserWarning)
        warnings.warn("a warning about the user's own run", UserWarning)
    assert [str(w.message) for w in seen] == ["a warning about the user's own run"]


def test_a_library_call_redirects_nothing_unless_asked() -> None:
    code = textwrap.dedent('''
        import sys
        from zoo import quiet
        with quiet.silenced():
            print("library-call-output")
        quiet.configure(verbose=False)
        with quiet.silenced():
            print("asked-for-quiet")
    ''')
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "library-call-output" in proc.stdout and "asked-for-quiet" not in proc.stdout
