"""Third-party warnings and log records collapse into one line; -v shows them; nas's own stay visible."""

import logging
import sys
import warnings

from nas.quiet import PACKAGE_DIR, third_party_quiet


def to_stderr(message, category, filename, lineno, file=None, line=None):
    """What Python does outside pytest (which records warnings instead)."""
    sys.stderr.write(f"{filename}:{lineno}: {category.__name__}: {message}\n")


def noise():
    warnings.warn_explicit("deprecated inside", DeprecationWarning, "/venv/site-packages/coremltools/x.py", 1)
    warnings.warn_explicit("tracer note", UserWarning, "/venv/site-packages/torch/jit/_trace.py", 2)
    logging.getLogger("coremltools.converters").warning("a conversion detail")
    warnings.warn_explicit("ours", UserWarning, f"{PACKAGE_DIR}/export/coreml.py", 3)


def test_third_party_noise_is_one_line_and_ours_is_shown(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = to_stderr
        with third_party_quiet(verbose=False) as hidden:
            noise()
    err = capsys.readouterr().err
    assert dict(hidden) == {"coremltools": 2, "torch": 1}
    assert "ours" in err and "deprecated inside" not in err and "a conversion detail" not in err
    assert [line for line in err.splitlines() if line.startswith("nas: ")] == [
        "nas: 3 third-party warning(s) hidden (coremltools 2, torch 1); nas -v shows them"
    ]


def test_verbose_shows_everything(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = to_stderr
        with third_party_quiet(verbose=True):
            noise()
    err = capsys.readouterr().err
    assert "deprecated inside" in err and "tracer note" in err and "hidden" not in err
