"""README.md's commands, run as written, so that the page cannot drift from the code.

Every command line README shows — each line of a ```sh block (``\\`` continuations joined, comments dropped) and
each shell command quoted in the prose (``./dev.sh …``, ``uv …``, ``pip …``, ``bash …``, ``PATH=…``,
``.venv/bin/…``) — is one of three things:

* part of the walkthrough: the ```sh blocks below ``## The demo``, run here for real, in order, as one
  ``bash -euo pipefail`` script in a scratch folder holding a copy of ``examples/``, with the venv's bin folder
  first on PATH — as README tells a reader to run them;
* the line that runs ``examples/demo.sh``, run here exactly as README writes it, from a scratch copy of the
  repository (the files ``git ls-files`` names: a fresh clone) beside the walkthrough, so both use the two cores;
* listed in ``NOT_RUN_HERE`` with where it does run, or why it cannot run inside the test suite.

A command README gains without a test, or a ``NOT_RUN_HERE`` entry README no longer has, fails
``test_every_command_in_readme_is_run_or_accounted_for``. The ``gwx …`` commands the prose merely names
(``gwx render``, ``gwx node status DIR/nodes/gd-hub``) are checked against the real command tree: the commands
and options must exist.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from gwexchange.cli.app import app

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
VENV_BIN = Path(sys.executable).parent
WALKTHROUGH_HEADING = "## The demo"  # the ```sh blocks below it are one shell session
DEMO_SH = 'PATH="$PWD/.venv/bin:$PATH" bash examples/demo.sh'
WALKTHROUGH_LIMIT = 900  # seconds: a few minutes on two busy cores; only so that a hang fails instead of blocking
DEMO_SH_LIMIT = 600

# Commands README shows that this file does not run, each with where it runs or why it cannot run here.
NOT_RUN_HERE: dict[str, str] = {
    "./dev.sh test": "CI runs it (.ci/run, from a fresh clone): it is this test suite, with ruff and mypy",
    "./dev.sh demo": (
        "installs from uv.lock over the network (uv sync) before it runs `gwx demo`; tests/cli/test_demo.py runs "
        "`gwx demo` from the checkout and tests/test_install.py from the installed wheel"
    ),
    "./dev.sh lock": "brings uv.lock in line with pyproject.toml, from the network (uv lock): by hand, then committed",
    "./dev.sh lock --upgrade": "moves every pin of uv.lock to its newest allowed version, from the network: by hand",
    "./dev.sh test --latest": "installs the newest versions from the network; by hand, not CI (changes with the day)",
    "./dev.sh mutate": "mutation testing, on demand: about 5,000 mutants, hours on two cores: too slow for CI",
    './dev.sh mutate "gwexchange.crypto.xmldsig*"': "one module's mutation testing, on demand: minutes, not CI",
    "pip install gwexchange": "names what `./dev.sh test --latest` stands in for: an install from the package index",
    "uv build": (
        "tests/test_install.py builds the same wheel and sdist with the lock's hatchling, the backend uv build calls"
    ),
    "uv export --no-dev --no-emit-project > requirements.txt": (
        "tests/test_install.py runs it (with --locked, and -o for the redirection)"
    ),
    "pip install --require-hashes -r requirements.txt": (
        "tests/test_install.py runs it, in a fresh environment outside the checkout"
    ),
    "pip install --no-deps gwexchange-*.whl": "tests/test_install.py runs it, then gwx --help, gwx demo, gwx render",
    ".venv/bin/python bench/bench_sign_verify.py": "a benchmark (two minutes of timing), not a check",
    ".venv/bin/python -m campaign": (
        "tests/test_campaign.py runs its CI portion (`python -m campaign --ci`, the hostile class left to "
        "tests/test_attacks.py, which runs the same corpus); minutes on two cores"
    ),
    ".venv/bin/python -m campaign --full": "on demand only: hours on two cores",
    ".venv/bin/python -m campaign --only crashes --point committed --repeat 50": (
        "a reproducer, 50 kills at one point: tests/test_campaign.py runs every point 20 times"
    ),
    ".venv/bin/python -m campaign --json": "the CI portion again, printed as JSON (tests/test_campaign.py reads it)",
}

# Shell commands quoted in README's prose start so; other code spans are file names, options, values, or a `gwx …`
# command named in passing (checked by test_gwx_commands_named_in_the_prose_exist).
INLINE_COMMAND = re.compile(r"(\./|\.venv/|bash |PATH=|uv |pip |python3? )")


# --- reading README ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Block:
    line: int  # README line of the ```sh fence
    text: str
    walkthrough_part: bool  # below the walkthrough heading

    @property
    def commands(self) -> list[str]:
        return command_lines(self.text)


def readme() -> str:
    return README.read_text(encoding="utf-8")


def sh_blocks(text: str) -> list[Block]:
    start = text.index(f"\n{WALKTHROUGH_HEADING}\n")
    return [
        Block(text.count("\n", 0, m.start()) + 1, m.group(1), m.start() > start)
        for m in re.finditer(r"^```sh\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    ]


def command_lines(script: str) -> list[str]:
    """The command lines of a shell script as a reader counts them: a line continued by a trailing backslash, an
    open quote or an open ``$(`` is one command; comments are dropped; runs of blanks become one space."""
    commands: list[str] = []
    current: list[str] = []
    quote = ""
    depth = 0  # open $( … )
    i = 0

    def flush() -> None:
        line = " ".join("".join(current).split())
        if line:
            commands.append(line)
        current.clear()

    while i < len(script):
        c = script[i]
        if quote == "'":
            current.append(c)
            quote = "" if c == "'" else quote
        elif c == "\\" and i + 1 < len(script):
            current.append(" " if script[i + 1] == "\n" else script[i : i + 2])
            i += 2
            continue
        elif quote == '"':
            current.append(c)
            quote = "" if c == '"' else quote
        elif c in "'\"":
            quote = c
            current.append(c)
        elif c == "#" and (not current or current[-1].isspace()):
            end = script.find("\n", i)
            i = len(script) if end < 0 else end
            continue
        elif c == "(" and current and current[-1] == "$":
            depth += 1
            current.append(c)
        elif c == ")" and depth:
            depth -= 1
            current.append(c)
        elif c == "\n" and not depth:
            flush()
        else:
            current.append(c)
        i += 1
    assert not quote and not depth, f"unbalanced quote or $( in:\n{script}"
    flush()
    return commands


def prose_code(text: str) -> list[str]:
    """The code spans of README's prose (outside fenced blocks), a span broken over two lines made one."""
    prose = re.sub(r"^```.*?^```$", "", text, flags=re.MULTILINE | re.DOTALL)
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]


def inline_commands(text: str) -> list[str]:
    return [span for span in prose_code(text) if INLINE_COMMAND.match(span)]


def walkthrough_blocks(text: str) -> list[Block]:
    """The blocks below the walkthrough heading whose commands are run here: all but those listed whole."""
    return [b for b in sh_blocks(text) if b.walkthrough_part and not set(b.commands) <= NOT_RUN_HERE.keys()]


# --- running -------------------------------------------------------------------------------------------------


def session_env() -> dict[str, str]:
    """A reader's shell: no GWX_* setting of this machine, the venv's gwx first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWX_")}
    env["PATH"] = os.pathsep.join(p for p in (str(VENV_BIN), env.get("PATH", "")) if p)
    return env


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill whatever the script left running in its process group (a daemon after a failed step)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def fresh_clone(target: Path) -> None:
    """The files of a fresh clone, as the work tree has them (``git ls-files``); without git, examples/ only —
    all that examples/demo.sh reads."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(REPO / "examples", target / "examples")
        return
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@dataclasses.dataclass
class DemoRun:
    proc: subprocess.Popen[bytes]
    output: Path
    started: float


@pytest.fixture(scope="module")
def demo_sh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """README's examples/demo.sh line, started in a scratch clone with the venv as its .venv (what ./dev.sh test
    leaves), running while the walkthrough runs; test_demo_sh_runs_as_readme_says waits for it."""
    clone = tmp_path_factory.mktemp("clone")
    fresh_clone(clone)
    (clone / ".venv").symlink_to(VENV_BIN.parent, target_is_directory=True)
    output = clone.parent / "demo-sh.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWX_")}
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            ["bash", "-c", DEMO_SH], cwd=clone, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    run = DemoRun(proc, output, time.monotonic())
    yield run
    stop_group(proc)


# --- the tests -----------------------------------------------------------------------------------------------


def test_every_command_in_readme_is_run_or_accounted_for() -> None:
    text = readme()
    blocks = sh_blocks(text)
    assert blocks, "README.md has no ```sh block"
    run = {command for block in walkthrough_blocks(text) for command in block.commands}
    assert run, f"no ```sh block below {WALKTHROUGH_HEADING!r}"
    for block in blocks:
        listed = [c for c in block.commands if c in NOT_RUN_HERE]
        assert not listed or len(listed) == len(block.commands), (
            f"README.md line {block.line}: a block is either run whole or listed whole in NOT_RUN_HERE; "
            f"listed: {listed}"
        )
    shown = [c for block in blocks for c in block.commands] + inline_commands(text)
    unaccounted = sorted({c for c in shown if c not in run and c != DEMO_SH and c not in NOT_RUN_HERE})
    assert not unaccounted, (
        "README.md shows commands no test runs: run them in the walkthrough (a ```sh block below "
        f"{WALKTHROUGH_HEADING!r}) or list them in NOT_RUN_HERE with where they run:\n" + "\n".join(unaccounted)
    )
    stale = sorted(set(NOT_RUN_HERE) - set(shown))
    assert not stale, "NOT_RUN_HERE names commands README.md no longer shows:\n" + "\n".join(stale)
    assert DEMO_SH in shown, f"README.md no longer runs examples/demo.sh as {DEMO_SH!r}: update DEMO_SH"


def test_command_lines_are_read_as_a_shell_reads_them() -> None:
    script = (
        "gwx doc sign a.xml --key k \\\n"
        "            --cert c        # → a.signed.xml\n"
        "# a comment line\n"
        "\n"
        'X=$(gwx pki list | awk \'$2 == "a b" # not a comment\n'
        "  {print $1}')   # the serial\n"
        'echo "#1 and $X" || echo refused\n'
    )
    assert command_lines(script) == [
        "gwx doc sign a.xml --key k --cert c",
        "X=$(gwx pki list | awk '$2 == \"a b\" # not a comment {print $1}')",
        'echo "#1 and $X" || echo refused',
    ]


@pytest.mark.usefixtures("demo_sh")  # started first, so that it runs beside the walkthrough
def test_walkthrough_runs_as_written(tmp_path: Path) -> None:
    blocks = walkthrough_blocks(readme())
    session = tmp_path / "session"
    session.mkdir()
    shutil.copytree(REPO / "examples", session / "examples")
    script = tmp_path / "readme.sh"
    script.write_text(
        "trap 'echo \"README.md: failed (exit $?): $BASH_COMMAND\" >&2' ERR\n"
        + "".join(f"# README.md line {b.line}\n{b.text}\n" for b in blocks),
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", str(script)],
        cwd=session,
        env=session_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        raw_out, raw_err = proc.communicate(timeout=WALKTHROUGH_LIMIT)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        raw_out, raw_err = proc.communicate()
        raise AssertionError(
            f"README walkthrough hung\n{raw_out.decode()[-3000:]}\n{raw_err.decode()[-3000:]}"
        ) from None
    finally:
        stop_group(proc)  # a daemon left behind by a failed step
    out, err = raw_out.decode("utf-8", "replace"), raw_err.decode("utf-8", "replace")
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{out[-4000:]}\nstderr:\n{err[-4000:]}"
    # On stderr only the one refusal README expects, and the warning every command on the hub repeats after
    # `gwx node update-directory`, since node.toml still names the older directory (reported; harmless here).
    noise = [
        line
        for line in err.splitlines()
        if not line.startswith("gwx: 证书不可信：certificate of gd.gov.office ")
        and not re.fullmatch(r"node\.directory-refused file=\S+ reason=directory 1 is older than directory 2 .*", line)
    ]
    assert not noise, err

    def shows(pattern: str, times: int = 1) -> None:
        found = len(re.findall(pattern, out, re.MULTILINE))
        assert found == times, f"{pattern!r} printed {found} times, not {times}:\n{out}"

    # What a clerk does: verified, revoked and refused (one line on stderr), signed again.
    shows("验证通过：所有签名、证书和摘要均有效。")
    shows(r"已吊销 gd\.gov\.office 的 signing 证书（序列号 [0-9a-f]+，原因 keyCompromise）")
    assert re.search(r"^gwx: 证书不可信：certificate of gd\.gov\.office .* was revoked", err, re.MULTILINE), err
    shows("^refused: exit 1$")
    # Sealed, inspected, opened, answered, verified.
    shows("^已拆封：粤办发〔2026〕12号《")
    shows("^交换信封：节点签名有效", 2)  # gwx inspect and gwx verify of the package
    shows(r"^回执有效：签收，广东省财政厅（gd\.gov\.czt）")
    shows("^回执签名有效：签收")
    shows("^验证通过：PDF 签名有效")
    # The directory and the daemon.
    shows(r"gd\.gov\.office .*gd-czt —专网→ gd-gxt —内网→ gd-hub（2 跳）")
    shows(r"^运行：是（pid \d+，端口 \d+）")
    shows("^已更新交换目录：第 2 版（运行中的节点已切换）")
    assert "event=node.stopped node=gd-hub" in (session / "hub.log").read_text(encoding="utf-8")
    assert not (session / "hub" / "run.json").exists(), "the hub daemon did not stop cleanly"
    # Five bundles, nothing refused; every answer back at its sender.
    shows("^已导入 .*，拒收 0 封$", 5)
    shows("拒收 [1-9]", 0)
    shows(r"gd\.gov\.gxt +gd\.gov\.czt +签收 ")
    shows(r"gd\.gov\.gxt +gd\.gov\.office +签收 ")
    shows(r"→ gd\.gov\.office：退回（.*）  路由 gd-czt → gd-gxt → gd-hub")
    assert list((session / "received").iterdir()), "gwx export wrote nothing"
    # The audit passes and proves.
    shows("^结论：全部检查通过$")
    shows("^已写出审计报告：audit.pdf；结论：全部检查通过$")
    shows(r"^证明成立：消息 [0-9a-f-]+ 是节点 gd-hub 日志第 \d+ 条")
    for pdf in ("notice.pdf", "audit.pdf"):
        assert (session / pdf).read_bytes().startswith(b"%PDF-"), pdf


def test_demo_sh_runs_as_readme_says(demo_sh: DemoRun) -> None:
    try:
        demo_sh.proc.wait(timeout=max(DEMO_SH_LIMIT - (time.monotonic() - demo_sh.started), 1))
    except subprocess.TimeoutExpired:
        stop_group(demo_sh.proc)
    out = demo_sh.output.read_text(encoding="utf-8", errors="replace")
    assert demo_sh.proc.returncode == 0, f"{DEMO_SH} exited {demo_sh.proc.returncode}:\n{out[-4000:]}"
    assert "Traceback" not in out, out
    script = (REPO / "examples" / "demo.sh").read_text(encoding="utf-8")
    refusals = len(re.findall(r"^expect_failure ", script, re.MULTILINE))
    assert refusals > 0
    assert out.count("已拒绝，符合预期") == refusals, out
    assert "!! this should have failed" not in out, out
    assert "验证通过：PDF 签名有效" in out, out
    assert "== 完成：所有文件在 " in out, out


def test_gwx_commands_named_in_the_prose_exist() -> None:
    root: Any = typer.main.get_command(app)  # a group of groups and commands (typer's own copy of click)
    named = [span for span in prose_code(readme()) if span.startswith("gwx ")]
    assert named
    for span in named:
        words = span.split()[1:]
        command = root
        while words and words[0] in getattr(command, "commands", {}):
            command = command.commands[words.pop(0)]
        if hasattr(command, "commands"):
            assert not words or words[0].startswith("-"), f"`{span}`: no command {words[0]!r}"
        options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
        unknown = [w for w in words if w.startswith("--") and w.split("=")[0] not in options]
        assert not unknown, f"`{span}`: {command.name} has no option {unknown}"


def test_commands_not_run_here_name_real_things() -> None:
    """What can be checked without running them: dev.sh's jobs, the campaign's arguments, the benchmark file."""
    dev_sh = (REPO / "dev.sh").read_text(encoding="utf-8")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from campaign.__main__ import _parser

    for line in NOT_RUN_HERE:
        argv = shlex.split(line)
        if argv[0] == "./dev.sh":
            assert re.search(rf"^  {argv[1]}\)$", dev_sh, re.MULTILINE), f"dev.sh has no job {argv[1]!r}"
            if argv[1] == "mutate":  # mutant name globs: each names a module [tool.mutmut] mutates
                mutated = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]
                for glob in argv[2:]:
                    assert glob.rstrip("*").replace(".", "/") + ".py" in mutated["only_mutate"], glob
            else:
                assert all(arg in dev_sh for arg in argv[2:]), f"dev.sh does not know {argv[2:]}"
        elif argv[:3] == [".venv/bin/python", "-m", "campaign"]:
            try:
                _parser().parse_args(argv[3:])
            except SystemExit:
                pytest.fail(f"python -m campaign refuses the arguments of {line!r}")
        elif argv[0] == ".venv/bin/python":
            assert (REPO / argv[1]).is_file(), line
