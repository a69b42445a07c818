"""Kernel template ("zygote"): fresh Jupyter kernels forked from a pre-imported process.

Starting a kernel costs ~0.5 s and importing pandas, plotly, IPython and qmsnb in
it ~1.5 s more, for a report whose own work takes a fraction of a second. Reusing
one kernel for many reports would save that, but then every report could see
what the previous one left behind (variables, random state, pandas options,
plotly's default template, attributes patched on an imported module), and no
amount of ``%reset`` and ``importlib.reload`` removes all of it.

So the warm engine keeps kernels *fresh* instead: one template process per batch
imports the libraries a report uses and warms their pure caches, and never runs
any report code. For each report it ``fork()``s; the child becomes an ordinary
``ipykernel`` kernel (the same ``IPKernelApp`` with the kernelspec's arguments
and the connection file its ``KernelManager`` wrote), runs that one report and
is killed. Every report therefore starts from the same pristine state, the
template's, and nothing a report does can reach another one: they never share
a process. The child only differs from a spawned kernel in what it did not have
to redo. After the fork it re-seeds ``random`` (CPython does this at fork) and
numpy's global generator from the OS, sets ``sys.argv``/``sys.path[0]``/the
working directory and environment a spawned kernel would have, starts its own
session and process group, and dies with the template.

Protocol (JSON lines over a Unix socket, one connection per worker):
``{"op": "fork", "argv": [...], "cwd": ..., "env": {...}}`` → ``{"pid": n}``;
``{"op": "ping"}`` → ``{"pid": n, "rss_mib": x}``; ``{"op": "remember", "prepared":
folder, "params": folder}`` → ``{"remembered": true}`` (the batch's prepared tables
and params read once into
the template, so every kernel forked afterwards has them: read-only data, the
same for every report, copied on write like everything else); and, unasked,
``{"exit": pid, "code": c}`` on the connection that forked ``pid`` when it ends.

:class:`ZygoteProvisioner` is the ``jupyter_client`` side: a kernel provisioner
that launches through the template instead of ``Popen``, so papermill and
nbclient drive a forked kernel exactly as a spawned one.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Modules the template imports before it forks (kernel machinery first, then the
#: libraries reports use). Only modules whose import does not depend on running
#: inside a kernel belong here: the probe test compares a forked kernel with a
#: spawned one.
PRELOAD: tuple[str, ...] = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.debugger",
    "ipykernel.comm",
    "ipykernel.eventloops",
    "ipykernel.embed",
    "IPython.core.interactiveshell",
    "IPython.core.completer",
    "IPython.core.magics",
    # what every kernel's start imported after the fork (~20 ms each): the
    # history's database, the debugger, the extension IPython loads by default
    "sqlite3",
    "pdb",
    "IPython.core.debugger",
    "IPython.extensions.storemagic",
    "IPython.display",
    "ipywidgets",
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "pyarrow.pandas_compat",
    "pandas.core.arrays.arrow.extension_types",
    "pandas.core.arrays.arrow._arrow_utils",
    "pandas.core.reshape.reshape",
    "pyarrow.acero",
    "narwhals._interchange.dataframe",
    "zmq.utils.garbage",
    "pandas.io.formats.format",
    "pandas.io.formats.html",
    "pandas.io.formats.style",
    "plotly.graph_objects",
    "plotly.subplots",
    "plotly.io",
    "plotly.express",
    "qmsnb",
    "qmsnb.config",
    "qmsnb.context",
    "qmsnb.display",
    "qmsnb.charts",
    "qmsnb.prepare",
    "qmsnb.kpi",
    "qmsnb.stats",
    # imported on first use by qmsnb.stats (the risk reports' shift tests): ~0.4 s
    # in every kernel that needs it
    "scipy.special",
)
#: Interpreter options a kernelspec may give that do not change what code does
#: (``frozen_modules=off`` only helps debuggers); with any other, the kernel is
#: spawned as usual rather than forked from a template started without it.
HARMLESS_INTERPRETER_OPTIONS = frozenset({"-Xfrozen_modules=off", "-X frozen_modules=off"})
#: How long a worker waits for the template to be ready.
READY_TIMEOUT = 120.0


# ---------------------------------------------------------------------------
# The template process
# ---------------------------------------------------------------------------
def _analysis_modules() -> list[str]:
    import qmsnb

    return list(getattr(qmsnb, "_ANALYSIS", {}).values())


class _KernelShellStandIn:
    """What ``get_ipython()`` looks like to a library asking "am I in a kernel?"."""

    kernel = None


@contextlib.contextmanager
def _as_in_a_kernel() -> Iterator[None]:
    """Import as a kernel would: some libraries fix defaults at import from their
    surroundings. pandas sets ``display.max_columns`` to 0 in a terminal and 20 in
    a kernel (``get_ipython().kernel``), and ``display.encoding`` from
    ``sys.stdout.encoding`` (the kernel's is ``UTF-8``). The probe test compares a
    forked kernel's settings with a spawned one's to keep this list honest.
    """
    import builtins
    import io

    had = hasattr(builtins, "get_ipython")
    saved = getattr(builtins, "get_ipython", None), sys.stdout
    builtins.get_ipython = _KernelShellStandIn  # type: ignore[attr-defined]
    sys.stdout = io.TextIOWrapper(io.BytesIO(), encoding="UTF-8")
    try:
        yield
    finally:
        if had:
            builtins.get_ipython = saved[0]  # type: ignore[attr-defined]
        else:
            del builtins.get_ipython  # type: ignore[attr-defined]
        sys.stdout = saved[1]


def preload(extra: tuple[str, ...] = ()) -> list[str]:
    """Import :data:`PRELOAD`, the analysis modules and ``extra``; return what failed."""
    from qmsnb._startup import defer_slow_imports

    defer_slow_imports()
    failed = []
    with _as_in_a_kernel():
        for name in (*PRELOAD, *_analysis_modules(), *extra):
            try:
                importlib.import_module(name)
            except Exception:  # an optional library missing: its reports import it themselves
                failed.append(name)
    return failed


def warm_caches() -> None:
    """Fill pure, lazily built library caches (no report code, no global settings).

    plotly builds a validator object per property the first time a figure uses it
    and loads its templates from JSON on first use; qmsnb reads its message
    catalogue once. Doing that here saves every forked kernel ~0.3 s of CPU.
    Nothing here changes a setting a report could observe: the probe test checks
    a forked kernel against a spawned one.
    """
    import plotly.graph_objects as go
    import plotly.io as pio
    from plotly.subplots import make_subplots

    from qmsnb import i18n

    i18n.catalogue()
    for name in ("plotly", "plotly_white"):
        pio.templates[name]
    traces = [
        go.Scatter(
            x=[1, 2],
            y=[1, 2],
            mode="lines+markers",
            marker={"color": ["red", "blue"], "line": {"width": 1}, "symbol": "circle"},
            line={"dash": "dash"},
            hovertemplate="%{y}",
            error_y={"array": [1, 1]},
        ),
        go.Bar(x=["a", "b"], y=[1, 2], text=["1", "2"], marker={"color": "grey"}),
        go.Heatmap(
            z=[[1, 2], [3, 4]],
            colorscale="Reds",
            text=[["a", "b"], ["c", "d"]],
            texttemplate="%{text}",
            textfont={"size": 10},
        ),
        go.Pie(labels=["a", "b"], values=[1, 2], hole=0.4),
        go.Scatterpolar(r=[1, 2, 3], theta=["a", "b", "c"], fill="toself"),
        go.Box(y=[1, 2, 3]),
        go.Histogram(x=[1, 2, 2]),
        go.Table(header={"values": ["a"]}, cells={"values": [[1]]}),
        go.Indicator(mode="gauge+number", value=1),
        go.Treemap(labels=["a", "b"], parents=["", "a"], values=[1, 1]),
        go.Sunburst(labels=["a", "b"], parents=["", "a"], values=[1, 1]),
        go.Funnel(y=["a", "b"], x=[2, 1]),
        go.Waterfall(x=["a", "b"], y=[1, -1]),
        go.Sankey(node={"label": ["a", "b"]}, link={"source": [0], "target": [1], "value": [1]}),
    ]
    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=["a", "b", "c", "d"],
        specs=[[{}, {}], [{}, {}]],
        shared_xaxes=False,
    )
    fig.add_trace(traces[0], row=1, col=1)
    fig.add_trace(traces[1], row=1, col=2)
    fig.add_hline(y=1, line_dash="dash", row=1, col=1)
    fig.add_hrect(y0=0, y1=1, fillcolor="grey", opacity=0.1, row=1, col=2)
    fig.add_vline(x=1, row=2, col=1)
    fig.add_annotation(x=1, y=1, text="a", showarrow=False)
    fig.add_shape(type="line", x0=0, x1=1, y0=0, y1=1)
    fig.update_layout(
        template="plotly_white",
        font={"family": "Arial", "size": 12},
        title={"text": "a", "x": 0},
        margin={"l": 1, "r": 1, "t": 1, "b": 1},
        height=300,
        legend={"orientation": "h"},
        hoverlabel={"font": {"family": "Arial"}},
        barmode="group",
        showlegend=True,
    )
    fig.update_xaxes(tickangle=0, showgrid=True, type="category", tickfont={"size": 10})
    fig.update_yaxes(range=[0, 1], ticksuffix="%", zeroline=False, tickfont={"size": 10})
    for trace in traces[2:]:
        other = go.Figure(trace)
        other.update_layout(template="plotly_white", polar={"radialaxis": {"range": [0, 1]}})
        pio.to_json(other, validate=False)
    pio.to_json(fig, validate=False)
    pio.to_html(fig, include_plotlyjs=False, full_html=False, validate=False)


def _set_pdeathsig() -> None:
    """Die with the template (Linux): a kernel never outlives its batch."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _become_kernel(request: dict[str, Any], inherited: list[int]) -> None:
    """In the forked child: turn into the kernel ``request`` describes (never returns)."""
    code = 1
    try:
        os.setsid()
        _set_pdeathsig()
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        for fd in inherited:
            with contextlib.suppress(OSError):
                os.close(fd)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        os.environ.clear()
        os.environ.update(request.get("env") or {})
        cwd = request.get("cwd") or os.getcwd()
        os.chdir(cwd)
        # what `python -m ipykernel_launcher` would have: argv and sys.path[0]
        import ipykernel_launcher

        sys.argv = [ipykernel_launcher.__file__, *request["argv"]]
        if sys.path and sys.path[0] != cwd:
            sys.path[0] = cwd
        # CPython re-seeds `random` at fork; numpy's legacy global generator is ours to do
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        app.initialize(request["argv"])
        app.start()
        code = 0
    except BaseException:  # nothing may escape into the template's code path
        code = 1
    finally:
        os._exit(code)


class _Server:
    """The template's request loop (one connection per worker)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(16)
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.buffers: dict[socket.socket, bytes] = {}
        self.owner: dict[int, socket.socket] = {}
        self.running = True

    def _fds(self) -> list[int]:
        fds = [self.listener.fileno(), self.wake_r.fileno(), self.wake_w.fileno()]
        fileno = getattr(self.selector, "fileno", None)  # epoll/kqueue have a descriptor
        if fileno is not None:
            fds.append(fileno())
        return [*fds, *(conn.fileno() for conn in self.buffers)]

    def _send(self, conn: socket.socket, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            conn.sendall((json.dumps(message) + "\n").encode())

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.owner.pop(pid, None)
            if conn is not None:
                self._send(conn, {"exit": pid, "code": os.waitstatus_to_exitcode(status)})

    def _handle(self, conn: socket.socket, request: dict[str, Any]) -> None:
        op = request.get("op")
        if op == "fork":
            pid = os.fork()
            if pid == 0:
                _become_kernel(request, self._fds())
            self.owner[pid] = conn
            self._send(conn, {"pid": pid})
        elif op == "ping":
            self._send(conn, {"pid": os.getpid(), "rss_mib": _rss_mib(os.getpid())})
        elif op == "remember":
            self._send(
                conn,
                _remember(str(request.get("prepared") or ""), str(request.get("params") or "")),
            )
        elif op == "stop":
            self.running = False
        else:
            self._send(conn, {"error": f"unknown op {op!r}"})

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w.fileno())
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "running", False))
        print(json.dumps({"ready": os.getpid()}), flush=True)
        while self.running:
            for key, _ in self.selector.select(timeout=1.0):
                if key.data == "accept":
                    conn, _ = self.listener.accept()
                    self.buffers[conn] = b""
                    self.selector.register(conn, selectors.EVENT_READ, "conn")
                elif key.data == "wake":
                    with contextlib.suppress(BlockingIOError):
                        while self.wake_r.recv(4096):
                            pass
                    self._reap()
                else:
                    self._read(key.fileobj)  # type: ignore[arg-type]
            self._reap()
        for pid in list(self.owner):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    def _read(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(conn)
            self.buffers.pop(conn, None)
            conn.close()
            return
        buffer = self.buffers[conn] + data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                self._handle(conn, json.loads(line))
        self.buffers[conn] = buffer


def _remember(folder: str, params: str = "") -> dict[str, Any]:
    """Read a batch's prepared tables and params into the template
    (:func:`qmsnb.prepare.remember`, :func:`qmsnb.config.remember_params`): every
    kernel forked afterwards has them. A failure only means kernels read them."""
    import gc

    try:
        from qmsnb import config, prepare

        if folder:
            prepare.remember(Path(folder))
        if params:
            config.remember_params(Path(params))
    except Exception as exc:  # the template must keep serving whatever happened
        return {"remembered": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    gc.collect()
    gc.freeze()  # as at start: kernels' collections never walk (and copy) them
    return {"remembered": True}


def _rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def serve(path: str) -> None:
    """Run the template: preload, warm caches, then answer fork requests until stopped."""
    import gc

    started = time.monotonic()
    failed = preload()
    warm_caches()
    # Move everything imported so far out of the collector's reach: a kernel's
    # collections then never walk (and so never copy-on-write) the template's objects.
    gc.collect()
    gc.freeze()
    print(
        json.dumps({"preloaded": round(time.monotonic() - started, 2), "failed": failed}),
        file=sys.stderr,
        flush=True,
    )
    _Server(path).serve()


# ---------------------------------------------------------------------------
# The driver's handle on a template process
# ---------------------------------------------------------------------------
class Template:
    """A running template process (started and stopped by the warm engine)."""

    def __init__(self, folder: Path | None = None) -> None:
        self._own_folder = folder is None
        self.folder = Path(folder or tempfile.mkdtemp(prefix="qmsnb-zygote-"))
        self.socket = str(self.folder / "zygote.sock")
        self.log = self.folder / "zygote.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Template:
        """Start the process; :meth:`wait_ready` blocks until it accepts requests."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "qmsnb.zygote", self.socket],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Block until the template is serving.

        Raises:
            RuntimeError: it exited or did not answer in time.
        """
        assert self.proc is not None and self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            self.stop()
            raise RuntimeError(f"kernel template not ready after {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if b"ready" not in line:
            self.stop()
            tail = self.log.read_text(encoding="utf-8", errors="replace")[-500:]
            raise RuntimeError(f"kernel template failed to start: {tail}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def rss_mib(self) -> float:
        return _rss_mib(self.proc.pid) if self.proc else 0.0

    def stop(self) -> None:
        """Stop the template and every kernel it forked."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)

    def close(self) -> None:
        self.stop()
        if self._own_folder:
            import shutil

            shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def running_template() -> Iterator[Template]:
    """A started, ready template for the duration of the block (tests, benchmarks)."""
    template = Template().start()
    try:
        template.wait_ready()
        yield template
    finally:
        template.close()


# ---------------------------------------------------------------------------
# The worker's side: a client and a kernel provisioner
# ---------------------------------------------------------------------------
class ZygoteClient:
    """One worker's connection to the template."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self._buffer = b""
        self.exits: dict[int, int] = {}

    def _lines(self, block: bool) -> list[dict[str, Any]]:
        self.sock.setblocking(block)
        messages: list[dict[str, Any]] = []
        try:
            while not messages or b"\n" in self._buffer:
                if b"\n" not in self._buffer:
                    data = self.sock.recv(65536)
                    if not data:
                        raise ConnectionError("kernel template closed the connection")
                    self._buffer += data
                    continue
                line, self._buffer = self._buffer.split(b"\n", 1)
                messages.append(json.loads(line))
                if not block and b"\n" not in self._buffer:
                    break
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
        for message in messages:
            if "exit" in message:
                self.exits[message["exit"]] = message["code"]
        return [m for m in messages if "exit" not in m]

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        self.sock.sendall((json.dumps(message) + "\n").encode())
        while True:
            replies = self._lines(block=True)
            if replies:
                return replies[0]

    def fork(self, argv: list[str], cwd: str, env: dict[str, str]) -> int:
        reply = self.request({"op": "fork", "argv": argv, "cwd": cwd, "env": env})
        if "pid" not in reply:
            raise RuntimeError(f"kernel template refused to fork: {reply}")
        return int(reply["pid"])

    def exit_code(self, pid: int) -> int | None:
        """The exit code of a forked kernel, or None while it runs."""
        if pid not in self.exits:
            with contextlib.suppress(BlockingIOError):
                self._lines(block=False)
        if pid in self.exits:
            return self.exits[pid]
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return self.exits.get(pid, -1)
        return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class ForkedKernel:
    """A ``Popen``-like handle on a forked kernel (what the provisioner manages)."""

    stdin = stdout = stderr = None

    def __init__(self, client: ZygoteClient, pid: int) -> None:
        self.client = client
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.client.exit_code(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.killpg(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def _provisioner_class() -> type:
    from jupyter_client.provisioning import LocalProvisioner

    class ZygoteProvisioner(LocalProvisioner):  # type: ignore[misc, valid-type]
        """Launches the kernel by forking the template instead of spawning a process.

        Everything else (connection file, ports or IPC paths, environment,
        signals, shutdown) is ``LocalProvisioner``'s. A kernelspec that is not
        this interpreter's ``ipykernel_launcher`` is spawned as usual.
        """

        client: ZygoteClient | None = None
        on_launch: Any = None
        forked = False

        def _kernel_args(self, cmd: list[str]) -> list[str] | None:
            """The kernel's own arguments if ``cmd`` is this interpreter's ipykernel."""
            if self.client is None or len(cmd) < 3:
                return None
            try:
                start = cmd.index("-m")
            except ValueError:
                return None
            if cmd[start + 1 : start + 2] != ["ipykernel_launcher"]:
                return None
            if any(option not in HARMLESS_INTERPRETER_OPTIONS for option in cmd[1:start]):
                return None
            try:
                same = os.path.samefile(cmd[0], sys.executable)
            except OSError:
                return None
            return list(cmd[start + 2 :]) if same else None

        async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
            args = self._kernel_args(cmd)
            if args is None:
                info = await super().launch_kernel(cmd, **kwargs)
            else:
                assert self.client is not None
                cwd = str(kwargs.get("cwd") or os.getcwd())
                env = {k: str(v) for k, v in (kwargs.get("env") or os.environ).items()}
                pid = self.client.fork(args, cwd, env)
                self.process = ForkedKernel(self.client, pid)
                self.pid = self.pgid = pid
                self.cwd = cwd
                self.forked = True
                info = self.connection_info
            if self.on_launch is not None:
                self.on_launch(self.pid, self.forked)
            return info

        async def wait(self) -> int | None:
            if not self.forked:
                return await super().wait()
            import asyncio

            while self.process is not None and self.process.poll() is None:
                await asyncio.sleep(0.01)
            code = self.process.returncode if self.process is not None else 0
            self.process = None
            return code

        def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
            # a forked kernel holds nothing worth a graceful exit: do not wait long
            return min(recommended, 1.0) if self.forked else recommended

    return ZygoteProvisioner


def kernel_manager(
    client: ZygoteClient, kernel_name: str, socket_dir: str, on_launch: Any = None
) -> Any:
    """An ``AsyncKernelManager`` whose kernel is forked from the template (IPC transport).

    IPC with a unique socket path per kernel, as the papermill engine does:
    parallel kernels on TCP can collide on ports (papermill #511).
    """
    import uuid

    km = _manager_class()(
        kernel_name=kernel_name, transport="ipc", ip=os.path.join(socket_dir, "k")
    )
    provisioner = _provisioner_class()(
        kernel_id=str(uuid.uuid4()), kernel_spec=km.kernel_spec, parent=km
    )
    provisioner.client = client
    provisioner.on_launch = on_launch
    km.provisioner = provisioner
    km.client_factory = ready_client_class()
    import zmq

    # The client connects as soon as the fork returns, before the kernel has bound
    # its sockets; ZeroMQ then retries after 100 ms (0.2 s until the kernel
    # answered, for a kernel up in 0.1 s). Retrying every 5 ms: the manager's
    # sockets and its clients' are made by this context.
    km.context.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
    return km


#: ZeroMQ's reconnect interval for the sockets to a just-forked kernel (ms).
RECONNECT_MS = 5

#: How often the manager looks whether a stopped kernel has gone (jupyter_client
#: looks every 0.1 s, and the first look is right after the kill: every report
#: waited 0.1 s for a kernel that had died at once).
EXIT_POLL = 0.005


def _manager_class() -> type:
    global _MANAGER
    if _MANAGER is None:
        from jupyter_client.manager import AsyncKernelManager

        class Manager(AsyncKernelManager):  # type: ignore[misc]
            """``AsyncKernelManager`` that notices a stopped kernel within 5 ms."""

            async def _async_wait(self, pollinterval: float = 0.1) -> None:
                await super()._async_wait(pollinterval=min(pollinterval, EXIT_POLL))

        _MANAGER = Manager
    return _MANAGER


_MANAGER: type | None = None

#: How long the client waits for more IOPub messages once the kernel answered
#: (jupyter_client waits 0.2 s, a fifth of a small report's whole run).
IOPUB_SETTLE = 0.01


def ready_client_class() -> type:
    """``AsyncKernelClient`` whose ``wait_for_ready`` does not idle 0.2 s at the end.

    jupyter_client's version drains IOPub after the ``kernel_info`` reply until no
    message came for 0.2 s: every report's kernel would sit idle for that long.
    Nothing needs the drain: nbclient only reads IOPub messages whose parent is
    the request it sent. Same checks otherwise (shell reply, IOPub connected,
    kernel alive, timeout).
    """
    global _READY_CLIENT
    if _READY_CLIENT is not None:
        return _READY_CLIENT
    from queue import Empty

    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.utils import ensure_async

    class ReadyClient(AsyncKernelClient):  # type: ignore[misc]
        def _context_default(self) -> Any:
            import zmq

            context = super()._context_default()
            context.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)  # see kernel_manager()
            return context

        async def _quick_wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.time() + (float("inf") if timeout is None else timeout)
            while True:
                self.kernel_info()
                try:
                    msg = await ensure_async(self.shell_channel.get_msg(timeout=1))
                except Empty:
                    pass
                else:
                    if msg["msg_type"] == "kernel_info_reply":
                        try:  # IOPub connected: the kernel_info's status message came
                            await ensure_async(self.iopub_channel.get_msg(timeout=0.2))
                        except Empty:
                            pass
                        else:
                            self._handle_kernel_info_reply(msg)
                            break
                if not await self._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.time() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")
            while True:
                try:
                    await ensure_async(self.iopub_channel.get_msg(timeout=IOPUB_SETTLE))
                except Empty:
                    break

        wait_for_ready = _quick_wait_for_ready

    _READY_CLIENT = ReadyClient
    return ReadyClient


_READY_CLIENT: type | None = None


if __name__ == "__main__":
    serve(sys.argv[1])
