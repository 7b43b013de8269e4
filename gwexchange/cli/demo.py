"""gwx demo: the six-node example network on this machine, from an empty folder to every document signed for."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, so the daemons are stopped on the way out


def demo(
    folder: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to put the PKI and the node homes (new or empty); default: a temp folder."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0, help="Seconds from the first send until every recipient must have signed for it.")
    ] = 60.0,
) -> None:
    """Run six exchange nodes here, send the four sample documents, follow them to 送达 and 签收, stop the nodes.

    Needs no setup: the PKI (demo keys, unencrypted), the signed directory and the node homes go into the folder.

    The folder stays for a look afterwards: gwx node status HOME, gwx outbox --home HOME, gwx inbox --home HOME.

    Exit code 0 only if every recipient signed for every document.
    """
    from gwexchange.cli.demo_network import run_demo

    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        result = run_demo(folder, timeout=timeout, say=typer.echo)
    except KeyboardInterrupt:
        typer.echo("gwx: 演示已中断，所有节点均已停止", err=True)
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    typer.echo(f"\n完成：全部公文均已签收，用时 {result.seconds:.1f} 秒。所有文件在 {result.folder}")


__all__ = [
    "demo",
]
