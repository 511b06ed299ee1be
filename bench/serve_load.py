"""Load test of ``emofuse serve``: throughput, latency, errors and memory of the HTTP server.

Per configuration a fresh ``python -m emofuse serve --model M --threads T --precision P``:
``--clients`` closed-loop clients POST 3 s WAV clips for ``--seconds`` while ``/healthz`` is
polled; then a mix of valid and bad inputs, each with its expected status; the server's RSS.
Then (not with ``--quick``) flat memory: RSS every 1,000 of ``--flat-requests`` requests.

    python bench/serve_load.py [--quick]    # writes bench/results/serve_load.{json,md}
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import _common as common
import httpx
import numpy as np
import soundfile as sf

from emofuse.signal.audio import resample

REPO = Path(__file__).resolve().parents[1]
CORPUS = common.CORPORA / "ravdess"
EXAMPLES = REPO / "examples"
CLIP_SECONDS = 3
RATE = 16000
# requests/s and p99 ms at 8 concurrent clients, 3 s clips, 2 cores (from the issue)
TARGETS = {"accurate": (50.0, 300.0), "fast": (100.0, 200.0)}
FLAT_RATIO = 1.10  # RSS after 10,000 requests / RSS after 1,000
MAX_UPLOAD_MB = 25.0  # the server's default limit
PAGE_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- clips and bad inputs


def _wav_bytes(wave: np.ndarray, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, RATE, format="WAV", subtype=subtype)
    return buffer.getvalue()


def _fit(wave: np.ndarray, rate: int) -> np.ndarray:
    """The middle 3 s of ``wave`` (tiled first when shorter), resampled to 16 kHz if needed."""
    if wave.ndim > 1:
        wave = wave.mean(axis=1)
    wave = resample(np.ascontiguousarray(wave, dtype=np.float32), rate, RATE)
    n = CLIP_SECONDS * RATE
    if wave.shape[0] < n:
        wave = np.tile(wave, -(-n // wave.shape[0]))
    start = (wave.shape[0] - n) // 2
    return wave[start : start + n]


def load_clips(limit: int) -> tuple[list[bytes], str]:
    """Up to ``limit`` 3 s clips as WAV bytes, and where they come from."""
    clips = []
    if CORPUS.is_dir():
        sources = sorted(CORPUS.rglob("*.flac"))
        step = max(1, len(sources) // limit)  # spread over actors and emotions
        for source in sources[::step][:limit]:
            wave, rate = sf.read(source, dtype="float32")
            clips.append(_wav_bytes(_fit(wave, rate)))
        if clips:
            return clips, (f"the middle {CLIP_SECONDS} s of {len(clips)} of RAVDESS's "
                           f"{len(sources)} files (real speech), 16-bit WAV")  # fmt: skip
    for source in sorted(EXAMPLES.glob("*.flac")):
        wave, rate = sf.read(source, dtype="float32")
        clips.append(_wav_bytes(_fit(wave, rate)))
    if not clips:
        raise SystemExit(f"no audio: neither {CORPUS} nor {EXAMPLES}/*.flac")
    return clips, f"{len(clips)} files of examples/ cut or tiled to {CLIP_SECONDS} s, 16-bit WAV"


@dataclass(frozen=True)
class Kind:
    """A bad-input kind: how it is sent, the statuses it may get, its share of the mix."""

    send: tuple
    expect: set[int]
    weight: int


def bad_inputs(clip: bytes) -> dict[str, Kind]:
    """The bad-input kinds by name (the first: valid clips)."""
    nan = np.full(CLIP_SECONDS * RATE, np.nan, dtype=np.float32)
    silence = _wav_bytes(np.zeros(CLIP_SECONDS * RATE, np.float32))
    text = b"this is not audio\n" * 40
    oversize = int((MAX_UPLOAD_MB + 1) * 2**20)
    return {
        "valid": Kind(("file", "clip.wav", None), {200}, 60),
        "silence": Kind(("file", "silence.wav", silence), {200}, 4),
        "text_named_wav": Kind(("file", "notes.wav", text), {400, 415, 422}, 8),
        "empty_body": Kind(("raw", "audio/wav", b""), {400, 411, 415, 422}, 8),
        "truncated_wav": Kind(("file", "cut.wav", clip[:30]), {400, 415, 422}, 6),
        "nan_wav": Kind(("file", "nan.wav", _wav_bytes(nan, "FLOAT")), {400, 422}, 8),
        "oversize_body": Kind(("raw", "audio/wav", b"\0" * oversize), {413}, 1),
        "oversize_declared": Kind(("declared", "audio/wav", 100 * 2**20), {413}, 5),
    }  # fmt: skip


def mix_schedule(kinds: dict[str, Kind], n: int, seed: int = 0) -> list[str]:
    """``n`` kind names drawn by weight (every kind at least once), shuffled reproducibly."""
    names = list(kinds)
    weights = np.array([kinds[k].weight for k in names], dtype=float)
    counts = np.maximum(1, np.floor(weights / weights.sum() * n)).astype(int)
    counts[0] += n - counts.sum()  # the rest are valid
    schedule = [name for name, c in zip(names, counts, strict=True) for _ in range(c)]
    np.random.default_rng(seed).shuffle(schedule)
    return schedule


# ---------------------------------------------------------------- server process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn may fork workers)."""
    pids, i = [pid], 0
    while i < len(pids):
        try:
            for task in os.listdir(f"/proc/{pids[i]}/task"):
                with open(f"/proc/{pids[i]}/task/{task}/children") as handle:
                    pids += [int(x) for x in handle.read().split()]
        except OSError:
            pass
        i += 1
    return pids


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(pid: int) -> dict:
    """RSS and peak RSS (VmHWM) in MB, summed over the server's process tree."""
    pids = _tree(pid)
    return {"rss_mb": round(sum(_status_kb(p, "VmRSS") for p in pids) / 1024, 1),
            "hwm_mb": round(sum(_status_kb(p, "VmHWM") for p in pids) / 1024, 1),
            "processes": len(pids)}  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the server's process tree."""
    total = 0.0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / PAGE_TICKS
        except (OSError, IndexError, ValueError):
            pass
    return total


class Server:
    """``python -m emofuse serve`` in a subprocess, its output in a log file."""

    def __init__(self, model: str, threads: int, precision: str, log_dir: Path, timeout: float,
                 extra: tuple[str, ...] = ()):  # fmt: skip
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "emofuse", "serve", "--host", "127.0.0.1", "--port",
                        str(self.port), "--model", model, "--threads", str(threads),
                        "--precision", precision]  # fmt: skip
        self.command += list(extra)
        self.log_path = log_dir / f"serve-{model}-{precision}-{threads}.log"
        self.log = self.log_path.open("wb")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        began = time.perf_counter()
        self.process = subprocess.Popen(self.command, cwd=REPO, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)  # fmt: skip
        deadline = began + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")  # fmt: skip
            try:
                answer = httpx.get(self.url + "/healthz", timeout=2.0)
                if answer.status_code == 200 and answer.json().get("status") == "ok":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.perf_counter() > deadline:
                self.stop()
                raise RuntimeError(f"no /healthz within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.2)
        self.startup_seconds = round(time.perf_counter() - began, 2)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, n: int = 3000) -> str:
        if not self.log.closed:  # after stop() the file is complete
            self.log.flush()
        return self.log_path.read_bytes()[-n:].decode(errors="replace")

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


# ---------------------------------------------------------------- clients


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0-100)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1e3, 1)


class HealthPoller(threading.Thread):
    """Polls ``GET /healthz`` every ``interval`` s on its own connection until stopped."""

    def __init__(self, url: str, interval: float = 0.1):
        super().__init__(daemon=True)
        self.url, self.interval = url + "/healthz", interval
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while not self.halt.is_set():
                began = time.perf_counter()
                try:
                    answer = client.get(self.url)
                    elapsed = time.perf_counter() - began
                    if answer.status_code == 200:
                        self.latencies.append(elapsed)
                    else:
                        self.failures.append(f"HTTP {answer.status_code}")
                except httpx.HTTPError as error:
                    self.failures.append(f"{type(error).__name__}: {error}"[:200])
                    elapsed = time.perf_counter() - began
                self.halt.wait(max(0.0, self.interval - elapsed))

    def summary(self) -> dict:
        return {"polls": len(self.latencies) + len(self.failures),
                "failures": len(self.failures), "failure_examples": self.failures[:3],
                "p50_ms": _ms(percentile(self.latencies, 50)),
                "p99_ms": _ms(percentile(self.latencies, 99)),
                "max_ms": _ms(max(self.latencies, default=None))}  # fmt: skip


async def _declared_oversize(port: int, content_type: str, declared: int) -> tuple[int, bytes]:
    """A raw POST whose ``Content-Length`` claims ``declared`` bytes but sends 1 KiB; the status
    and body of the answer (the server must not wait for the rest)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = (f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {declared}\r\n"
                "Connection: close\r\n\r\n")  # fmt: skip
        writer.write(head.encode() + b"\0" * 1024)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(65536), timeout=10.0)
        while b"\r\n\r\n" in data and len(data) < 65536:
            more = await asyncio.wait_for(reader.read(65536), timeout=2.0)
            if not more:
                break
            data += more
    finally:
        writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), body


async def _send(client: httpx.AsyncClient, port: int, kind: Kind, clip: bytes) -> tuple[int, bytes]:
    how, name_or_type, payload = kind.send
    if how == "file":
        files = {"file": (name_or_type, clip if payload is None else payload, "audio/wav")}
        answer = await client.post("/v1/predict", files=files)
    elif how == "raw":
        answer = await client.post("/v1/predict", content=payload,
                                   headers={"content-type": name_or_type})  # fmt: skip
    else:
        return await _declared_oversize(port, name_or_type, payload)
    return answer.status_code, answer.content


@dataclass(frozen=True)
class Request:
    """One request of a phase: its bad-input kind, when it started (s into the phase), the HTTP
    status (None: transport error), the latency (s) and the answer's start or the error."""

    kind: str
    start: float
    status: int | None
    latency: float
    body: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def status_key(self) -> str:
        return str(self.status) if self.status is not None else "transport error"

    def fields(self, *names: str) -> dict:
        return {name: getattr(self, name) for name in names}


async def _drive(
    url: str,
    port: int,
    clips: list[bytes],
    clients: int,
    *,
    seconds: float | None,
    max_requests: int | None,
    schedule: list[str] | None = None,
    kinds: dict[str, Kind] | None = None,
    on_count: object = None,
) -> tuple[list[Request], float]:
    """``clients`` closed-loop clients until ``seconds`` pass or ``max_requests`` are sent (or
    the ``schedule`` of bad-input kinds runs out). Returns one record per request and the wall
    time of the phase."""
    records: list[Request] = []
    counter = iter(range(10**12))
    began = time.perf_counter()
    deadline = began + seconds if seconds else math.inf
    valid = Kind(("file", "clip.wav", None), {200}, 1)
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)

    async def one_client(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            i = next(counter)
            if (max_requests is not None and i >= max_requests) or (
                schedule is not None and i >= len(schedule)
            ):
                return
            name = schedule[i] if schedule is not None else "valid"
            kind = kinds[name] if schedule is not None else valid
            start = time.perf_counter()
            status, text, error = None, None, None
            try:
                status, body = await _send(client, port, kind, clips[i % len(clips)])
                if status != 200 or name != "valid":
                    text = body[:300].decode(errors="replace")
            except (httpx.HTTPError, OSError, asyncio.TimeoutError, ValueError,
                    IndexError) as failure:  # fmt: skip
                error = f"{type(failure).__name__}: {failure}"[:300]
            records.append(Request(name, start - began, status, time.perf_counter() - start,
                                   text, error))  # fmt: skip
            if on_count is not None:
                on_count(len(records))

    timeout = httpx.Timeout(60.0, connect=10.0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        await asyncio.gather(*(one_client(client) for _ in range(clients)))
    return records, time.perf_counter() - began


def drive(*args, **kwargs) -> tuple[list[Request], float]:
    return asyncio.run(_drive(*args, **kwargs))


# ---------------------------------------------------------------- phases


@dataclass(frozen=True)
class Load:
    """The timed load of one configuration (latencies of the 2xx answers, in ms)."""

    requests: int
    ok: int
    seconds: float
    requests_per_second: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    non_2xx: int
    statuses: dict
    failure_examples: list
    healthz: dict
    server_cores: float
    client_cores: float
    other_cores: float | None


def load_phase(server: Server, clips: list[bytes], clients: int, seconds: float,
               max_requests: int | None, warmup: int) -> Load:  # fmt: skip
    """Warm-up, then the timed closed-loop load with the /healthz poller beside it."""
    drive(server.url, server.port, clips, clients, seconds=None, max_requests=warmup)
    poller = HealthPoller(server.url)
    server_cpu, mine = cpu_seconds(server.pid), time.process_time()
    snapshot = common.cpu_snapshot()
    poller.start()
    records, wall = drive(server.url, server.port, clips, clients, seconds=seconds,
                          max_requests=max_requests)  # fmt: skip
    poller.halt.set()
    poller.join()
    end = common.cpu_snapshot()
    server_cores = (cpu_seconds(server.pid) - server_cpu) / wall
    client_cores = (time.process_time() - mine) / wall
    others = None
    if snapshot["busy"] is not None and end["busy"] is not None:
        busy = (end["busy"] - snapshot["busy"]) / (end["wall"] - snapshot["wall"])
        others = round(max(0.0, busy - server_cores - client_cores), 2)
    ok = [r.latency for r in records if r.ok]
    failed = [r for r in records if not r.ok]
    statuses = dict(Counter(r.status_key for r in records))
    return Load(len(records), len(ok), round(wall, 2), round(len(ok) / wall, 1),
                _ms(percentile(ok, 50)), _ms(percentile(ok, 90)), _ms(percentile(ok, 99)),
                _ms(max(ok, default=None)), len(failed), statuses,
                [r.fields("status", "body", "error") for r in failed[:5]], poller.summary(),
                round(server_cores, 2), round(client_cores, 2), others)  # fmt: skip


def _as_expected(request: Request, expect: set[int]) -> bool:
    """The status is one ``expect``ed, and an error answer carries detail and request_id."""
    if request.status not in expect:
        return False
    if request.status < 400:
        return True
    try:
        body = json.loads(request.body or "")
    except ValueError:
        return False
    return isinstance(body, dict) and "detail" in body and "request_id" in body


def bad_mix_phase(server: Server, clips: list[bytes], clients: int, n: int) -> dict:
    """Valid and bad requests mixed; 5xx answers and bad requests not answered as expected."""
    kinds = bad_inputs(clips[0])
    schedule = mix_schedule(kinds, n)
    records, wall = drive(server.url, server.port, clips, clients, seconds=None,
                          max_requests=None, schedule=schedule, kinds=kinds)  # fmt: skip
    per_kind: dict[str, dict] = {}
    server_errors, unexpected = 0, []
    for r in records:
        kind = kinds[r.kind]
        row = per_kind.setdefault(r.kind, {"sent": 0, "as_expected": 0, "statuses": {},
                                           "expected": sorted(kind.expect)})  # fmt: skip
        row["sent"] += 1
        row["statuses"][r.status_key] = row["statuses"].get(r.status_key, 0) + 1
        if r.status is not None and r.status >= 500:
            server_errors += 1
        if _as_expected(r, kind.expect):
            row["as_expected"] += 1
        else:
            unexpected.append(r.fields("kind", "status", "body", "error"))
    return {"requests": len(records), "seconds": round(wall, 2), "5xx": server_errors,
            "not_as_expected": len(unexpected), "unexpected_examples": unexpected[:8],
            "per_kind": per_kind}  # fmt: skip


def run_config(model: str, threads: int, precision: str, clips: list[bytes], args,
               log_dir: Path) -> dict:  # fmt: skip
    row = {"model": model, "precision": precision, "threads": threads, "clients": args.clients}
    try:
        server = Server(model, threads, precision, log_dir, args.startup_timeout)
    except RuntimeError as error:
        row["error"] = str(error)
        return row
    try:
        row["startup_seconds"] = server.startup_seconds
        row["memory_before"] = memory(server.pid)
        row["load"] = asdict(load_phase(server, clips, args.clients, args.seconds,
                                        args.max_requests, args.warmup))  # fmt: skip
        row["memory_after_load"] = memory(server.pid)
        row["bad_mix"] = bad_mix_phase(server, clips, args.clients, args.bad_requests)
        row["memory_after"] = memory(server.pid)
        row["server_alive"] = server.process.poll() is None
    except Exception as error:  # report what broke, keep the other configurations
        row["error"] = f"{type(error).__name__}: {error}"
    finally:
        row["exit_code"] = server.stop()
        row["log_tail"] = server.log_tail(1500) if "error" in row else None
    return row


@dataclass(frozen=True)
class Flat:
    """The flat-memory phase: a fast fp32 server's RSS every 1,000 requests (``marks``)."""

    model: str
    precision: str
    threads: int
    clients: int
    requests: int
    non_2xx: int
    seconds: float
    requests_per_second: float
    server_alive: bool
    marks: list
    rss_ratio: float | None


def flat_phase(clips: list[bytes], args, log_dir: Path) -> dict:
    """RSS of a fresh fast-model server after every 1,000 of ``--flat-requests`` requests."""
    threads = max(args.threads)
    server = Server("fast", threads, "fp32", log_dir, args.startup_timeout)
    marks: list[dict] = [{"requests": 0, **memory(server.pid)}]
    step = 1000

    def on_count(n: int) -> None:
        if n % step == 0:
            marks.append({"requests": n, **memory(server.pid)})

    try:
        records, wall = drive(server.url, server.port, clips, args.clients, seconds=None,
                              max_requests=args.flat_requests, on_count=on_count)  # fmt: skip
        if marks[-1]["requests"] != len(records):
            marks.append({"requests": len(records), **memory(server.pid)})
        alive = server.process.poll() is None
    finally:
        server.stop()
    failed = sum(1 for r in records if not r.ok)
    first = next((m for m in marks if m["requests"] == step), marks[0])
    ratio = marks[-1]["rss_mb"] / first["rss_mb"] if first["rss_mb"] else None
    return asdict(Flat("fast", "fp32", threads, args.clients, len(records), failed, round(wall, 1),
                       round(len(records) / wall, 1), alive, marks,
                       round(ratio, 3) if ratio else None))  # fmt: skip


# ---------------------------------------------------------------- report


def _fmt(value: object) -> object:
    return "-" if value is None else value


def _best_run(runs: list[dict], goal_p99: float) -> dict:
    """The configuration with the most requests/s among those meeting the p99 goal (else all)."""
    meeting = [r for r in runs if r["load"]["p99_ms"] is not None
               and r["load"]["p99_ms"] < goal_p99]  # fmt: skip
    return max(meeting or runs, key=lambda r: r["load"]["requests_per_second"])


def speed_checks(rows: list[dict], clients: int) -> list[common.Check]:
    """Requests/s and p99 of each model's best configuration against :data:`TARGETS`."""
    checks = []
    for model, (goal_rps, goal_p99) in TARGETS.items():
        runs = [r for r in rows if r["model"] == model and "load" in r]
        if not runs:
            continue
        best = _best_run(runs, goal_p99)
        load = best["load"]
        p99 = load["p99_ms"]
        ok = load["requests_per_second"] >= goal_rps and p99 is not None and p99 < goal_p99
        checks.append(common.Check.of(
            f"{model}: >= {goal_rps:g} requests/s with p99 < {goal_p99:g} ms, {clients} clients",
            f"{load['requests_per_second']:g} /s, p99 {load['p99_ms']} ms",
            f"{best['threads']} thread(s), {best['precision']}", ok))  # fmt: skip
    return checks


def error_checks(rows: list[dict]) -> list[common.Check]:
    """No 5xx (or transport error) under load; each bad input its expected 4xx."""
    loaded = [r for r in rows if "load" in r]
    mixed = [r for r in rows if "bad_mix" in r]
    broken = any("error" in r for r in rows)
    under_load = sum(c for r in loaded for s, c in r["load"]["statuses"].items()
                     if s.startswith("5"))  # fmt: skip
    transport = sum(r["load"]["statuses"].get("transport error", 0) for r in loaded)
    in_mix = sum(r["bad_mix"]["5xx"] for r in mixed)
    wrong = sum(r["bad_mix"]["not_as_expected"] for r in mixed)
    return [
        common.Check.of("zero 5xx under load", f"{under_load} 5xx, {transport} transport errors",
                        "all configurations",
                        bool(loaded) and not under_load and not transport and not broken),
        common.Check.of("zero 5xx in the bad-input mix; each bad input its 4xx",
                        f"{in_mix} 5xx, {wrong} not as expected", "all configurations",
                        bool(mixed) and not in_mix and not wrong and not broken),
    ]  # fmt: skip


def flat_check(flat: dict, flat_requests: int) -> common.Check:
    """RSS after ``flat_requests`` requests within :data:`FLAT_RATIO` of RSS after 1,000."""
    ratio = flat.get("rss_ratio")
    return common.Check.of(
        f"RSS after {flat_requests:,} requests <= {FLAT_RATIO:g} x after 1,000",
        f"{ratio} x" if ratio else flat.get("error", "-")[:80],
        f"fast, {flat.get('threads')} thread(s)",
        bool(ratio) and ratio <= FLAT_RATIO and not flat["non_2xx"])  # fmt: skip


def target_checks(results: dict) -> list[common.Check]:
    settings, rows, flat = results["settings"], results["configs"], results["flat"]
    checks = speed_checks(rows, settings["clients"]) + error_checks(rows)
    if flat is not None:
        checks.append(flat_check(flat, settings["flat_requests"]))
    return checks


def load_row(r: dict) -> list[object]:
    """One configuration's row of the load table (or its error)."""
    if "load" not in r:
        error = "error: " + r.get("error", "?").splitlines()[0][:120]
        return [r["model"], r["precision"], r["threads"], error] + [""] * 8
    load, mix = r["load"], r.get("bad_mix", {})
    after = r.get("memory_after", r["memory_after_load"])
    return [r["model"], r["precision"], r["threads"], load["requests_per_second"],
            _fmt(load["p50_ms"]), _fmt(load["p90_ms"]), _fmt(load["p99_ms"]), load["non_2xx"],
            _fmt(mix.get("5xx")),
            f"{r['memory_before']['rss_mb']:g} / {after['rss_mb']:g} / {after['hwm_mb']:g}",
            _fmt(load["healthz"]["p99_ms"]),
            f"{load['server_cores']} / {load['client_cores']} / {_fmt(load['other_cores'])}",
            ]  # fmt: skip


def kinds_table(rows: list[dict]) -> str:
    """The bad-input mix of all configurations together, one row per kind."""
    kinds: dict[str, dict] = {}
    for r in rows:
        for name, k in r.get("bad_mix", {}).get("per_kind", {}).items():
            row = kinds.setdefault(name, {"sent": 0, "as_expected": 0, "statuses": Counter(),
                                          "expected": k["expected"]})  # fmt: skip
            row["sent"] += k["sent"]
            row["as_expected"] += k["as_expected"]
            row["statuses"].update(k["statuses"])
    table = [[name, "/".join(map(str, k["expected"])), k["sent"], k["as_expected"],
              ", ".join(f"{s}: {c}" for s, c in sorted(k["statuses"].items()))]
             for name, k in kinds.items()]  # fmt: skip
    return common.markdown_table(["kind", "expected", "sent", "as expected", "statuses"], table)


def _intro(results: dict) -> str:
    machine, args = results["machine"], results["settings"]
    return (
        f"Machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores; torch "
        f"{machine['torch']}. Load average before {results['load_before']}, after "
        f"{results['load_after']}. Clips: {results['clips']}. Per configuration: a fresh "
        f"`python -m emofuse serve --model M --threads T [--precision P]`; {args['warmup']} "
        f"warm-up requests, then {args['clients']} closed-loop clients (one asyncio loop, httpx, "
        f"same machine: the client's CPU use is in the last column) POST `/v1/predict` for "
        f"{args['seconds']:g} s while a thread polls `/healthz` every 100 ms; then a bad-input "
        f"mix of {args['bad_requests']} requests. RSS is the server's (VmRSS, peak = VmHWM). "
        f"Reproduce: `python bench/serve_load.py{' --quick' if args['quick'] else ''}`."
    )


def _flat_section(flat: dict) -> list[str]:
    return [f"## Flat memory: fast model, {flat['threads']} thread(s), {flat['requests']:,} "
            f"requests at {flat['requests_per_second']} /s, {flat['non_2xx']} non-2xx",
            common.markdown_table(["after requests", "RSS MB", "peak MB"],
                                  [[f"{m['requests']:,}", m["rss_mb"], m["hwm_mb"]]
                                   for m in flat["marks"]])]  # fmt: skip


LOAD_HEADERS = ["model", "precision", "threads", "requests/s", "p50 ms", "p90 ms", "p99 ms",
                "non-2xx (valid)", "5xx (bad mix)", "RSS before/after/peak MB", "healthz p99 ms",
                "cores server/client/other"]  # fmt: skip


def render_markdown(results: dict) -> str:
    """The report of a run (its JSON, as written or read back)."""
    rows, flat = results["configs"], results["flat"]
    broken = [r for r in rows if "error" in r]
    sections = [
        "# `emofuse serve` under load: throughput, latency, errors, memory",
        _intro(results),
        "## Targets",
        common.checks_table(target_checks(results)),
        "## Load (valid 3 s clips)",
        common.markdown_table(LOAD_HEADERS, [load_row(r) for r in rows]),
        "## Bad-input mix (all configurations together)",
        kinds_table(rows),
    ]
    if flat is not None and "marks" in flat:
        sections += _flat_section(flat)
    if broken:
        sections += ["## Errors", "\n".join(f"- {r['model']} {r['precision']} {r['threads']}: "
                                            f"{r['error'].splitlines()[0][:300]}"
                                            for r in broken)]  # fmt: skip
    return "\n\n".join(sections)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.parser(__doc__, quick="a few seconds per configuration")
    parser.add_argument("--models", nargs="+", default=["fast", "accurate"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--precisions", nargs="+", default=["fp32"], help="bf16: accurate only")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0, help="timed load per config")
    parser.add_argument("--max-requests", type=int, default=None, help="cap per load phase")
    parser.add_argument("--warmup", type=int, default=32, help="untimed requests first")
    parser.add_argument("--bad-requests", type=int, default=400, help="size of the bad mix")
    parser.add_argument("--flat-requests", type=int, default=10000)
    parser.add_argument("--clips", type=int, default=240, help="distinct clips to send")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = min(args.seconds, 4.0)
        args.bad_requests = min(args.bad_requests, 100)
        args.warmup = min(args.warmup, 8)
        args.clips = min(args.clips, 48)
    return args


def measure(args: argparse.Namespace, clips: list[bytes], log_dir: Path) -> tuple[list, dict]:
    """Every configuration, then (unless ``--quick``) the flat-memory phase."""
    configs = [(m, t, p) for m in args.models for p in args.precisions for t in args.threads
               if p == "fp32" or m == "accurate"]  # fmt: skip
    rows = []
    for model, threads, precision in configs:
        row = run_config(model, threads, precision, clips, args, log_dir)
        print(json.dumps({k: v for k, v in row.items() if k != "log_tail"}), flush=True)
        rows.append(row)
    flat = None
    if not args.quick:
        try:
            flat = flat_phase(clips, args, log_dir)
        except RuntimeError as error:
            flat = {"error": str(error)}
        print(json.dumps(flat), flush=True)
    return rows, flat


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    before = common.load_average()
    clips, about = load_clips(args.clips)
    with tempfile.TemporaryDirectory() as tmp:
        rows, flat = measure(args, clips, Path(tmp))
    settings = {k: v for k, v in vars(args).items() if k != "results_dir"}
    results = {"machine": common.machine_info(), "clips": about, "load_before": before,
               "load_after": common.load_average(), "settings": settings,
               "configs": rows, "flat": flat}  # fmt: skip
    common.write_results("serve_load", results, render_markdown(results),
                         Path(args.results_dir), quick=args.quick)  # fmt: skip


if __name__ == "__main__":
    main()
