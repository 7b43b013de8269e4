"""``gwx``: the command line of gwexchange, a thin layer over the library.

Every command prints what a clerk needs in Chinese, ``--json`` where a script reads the result, and any error as
one plain line on stderr with a non-zero exit code (1: the input or the verification failed; 2: bad usage).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

import typer

from gwexchange.cli.audit import audit_app
from gwexchange.cli.demo import demo
from gwexchange.cli.directory import directory_app
from gwexchange.cli.doc import doc_app
from gwexchange.cli.documents import export, show
from gwexchange.cli.envelope import inspect_command, open_command, receipt_app, seal_command
from gwexchange.cli.node import node_cli
from gwexchange.cli.pki import pki_app
from gwexchange.cli.render import render
from gwexchange.cli.verify import verify
from gwexchange.errors import (
    ConfigError,
    DecryptionError,
    DocumentError,
    EnvelopeError,
    GwxError,
    RouteError,
    SignatureError,
    TrustError,
    VerificationError,
    XmlInputError,
)

app = typer.Typer(
    name="gwx",
    help="gwexchange：公文交换 — 起草、签发、验证公文。",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _options(
    verbose: bool = typer.Option(False, "--verbose", help="也显示所用程序库的警告和日志（排查问题时用）"),
) -> None:
    if verbose:
        _show_libraries()


app.add_typer(pki_app, name="pki")
app.add_typer(doc_app, name="doc")
app.add_typer(directory_app, name="directory")
app.add_typer(receipt_app, name="receipt")
app.command("verify")(verify)
app.command("render")(render)
app.command("seal")(seal_command)
app.command("open")(open_command)
app.command("inspect")(inspect_command)
app.add_typer(node_cli)  # gwx node …, send, outbox, inbox, sign-for, return
app.add_typer(audit_app, name="audit")
app.command("demo")(demo)
app.command("show")(show)
app.command("export")(export)


def _headline(error: GwxError) -> str:
    """The kind of failure in the clerk's words; the detail follows it."""
    for kind, words in (
        (DocumentError, "公文格式错误"),
        (RouteError, "无可用路由"),
        (XmlInputError, "XML 输入被拒绝"),
        (ConfigError, "配置错误"),
        (SignatureError, "签名无效"),
        (TrustError, "证书不可信"),
        (DecryptionError, "无法解密"),
        (EnvelopeError, "信封被拒绝"),
        (VerificationError, "验证失败"),
    ):
        if isinstance(error, kind):
            return words
    return "错误"


class _OnlyGwexchange(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == "gwexchange" or record.name.startswith("gwexchange.")


_terminal = logging.StreamHandler()
_terminal.setFormatter(logging.Formatter("%(message)s"))
_library_filter = _OnlyGwexchange()


def _keep_libraries_quiet() -> None:
    """A clerk reads gwx's own lines, not a library's: no warning (a deprecation inside pyHanko, say) and no log
    record of pyHanko, SQLAlchemy, aiosmtpd or asyncio reaches the terminal, so a refusal stays one line.

    The root logger gets a handler that passes only gwexchange's records; without one, Python's last-resort handler
    would print every library's warnings. ``gwx node run`` replaces it with the daemon's own log format.
    """
    warnings.simplefilter("ignore")
    _terminal.setLevel(logging.WARNING)
    _terminal.addFilter(_library_filter)
    root = logging.getLogger()
    if _terminal not in root.handlers:
        root.addHandler(_terminal)


def _show_libraries() -> None:
    """``--verbose``: libraries' warnings and log records as Python would show them."""
    warnings.resetwarnings()
    warnings.simplefilter("default")
    _terminal.removeFilter(_library_filter)


def main() -> None:
    """Entry point: typer reports usage errors (exit 2); every failure of ours becomes one line (exit 1)."""
    _keep_libraries_quiet()
    # Every file gwx makes is its user's alone: node homes hold decrypted documents, exports and keys likewise.
    os.umask(0o077)
    try:
        app()
    except GwxError as e:
        typer.echo(f"gwx: {_headline(e)}：{e}", err=True)
        sys.exit(1)
    except OSError as e:
        typer.echo(f"gwx: 文件错误：{e.strerror or e}：{e.filename or ''}", err=True)
        sys.exit(1)


__all__ = [
    "app",
    "main",
]
