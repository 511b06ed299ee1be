"""Live streams: N concurrent WebSocket streams (``WS /v1/stream``), each paced at real time by
its client, against one cold ``emofuse serve`` on the same machine (clients included).

Each stream sends corpus speech as 100 ms chunks of 16 kHz PCM on schedule; per event the
client measures *latency* (arrival minus the sending of the audio that decided it) and *behind*
(arrival minus the sending of the audio at its ``end``). A load is *held* when no stream is
dropped, no event comes more than 1 s late and p95 latency < 500 ms. A last run samples the
server's RSS over ``--long-seconds``.

    python bench/live_streams.py [--quick]    # writes bench/results/live_streams.{json,md}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import _common as common
import numpy as np
from serve_load import Server, _ms, cpu_seconds, memory, percentile

RATE = 16000
CHUNK_SECONDS = 0.1
LADDERS = {"fast": [25, 50, 100, 150], "accurate": [5, 10, 20, 30]}
HOPS = {"fast": 1.5, "accurate": 5.0}


def speech_pool(limit: int = 400) -> list[np.ndarray]:
    """Real speech clips: files spread over the shared corpora, else the bundled examples."""
    from emofuse.signal.audio import load_audio

    files = common.corpus_files()
    files = files[:: max(1, len(files) // limit)] or common.corpus_files("examples", common.REPO)
    return [load_audio(f, RATE) for f in files]


def stream_audio(pool: list[np.ndarray], seconds: float, seed: int) -> bytes:
    """``seconds`` of clips in random order with 0.3-2 s pauses, as 16-bit PCM."""
    rng, parts, total = np.random.default_rng(seed), [], 0
    while total < seconds * RATE:
        clip = pool[rng.integers(len(pool))]
        pause = np.zeros(int(rng.uniform(0.3, 2.0) * RATE), np.float32)
        parts += [clip, pause]
        total += clip.size + pause.size
    wave = np.concatenate(parts)[: int(seconds * RATE)]
    return (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()


async def one_stream(url: str, audio: bytes, delay: float) -> dict:
    """Send ``audio`` paced at real time after ``delay`` s; every event with its timings."""
    import websockets

    await asyncio.sleep(delay)
    step = round(CHUNK_SECONDS * RATE) * 2
    chunks = [audio[i : i + step] for i in range(0, len(audio), step)]
    sent: list[float] = []  # when each chunk went out
    events: list[dict] = []
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"sample_rate": RATE, "format": "pcm_s16le"}))

        async def receive() -> None:
            async for message in ws:
                events.append({**json.loads(message), "arrived": time.perf_counter()})

        receiver = asyncio.create_task(receive())
        began = time.perf_counter()
        for i, chunk in enumerate(chunks):
            await asyncio.sleep(max(0.0, began + i * CHUNK_SECONDS - time.perf_counter()))
            await ws.send(chunk)
            sent.append(time.perf_counter())
        await ws.send(json.dumps({"event": "end"}))
        ended = time.perf_counter()
        await receiver
        code = ws.close_code

    def sent_at(seconds: float) -> float:
        index = math.ceil(round(seconds / CHUNK_SECONDS, 6)) - 1
        return sent[index] if 0 <= index < len(sent) else ended

    for event in events:
        event["latency"] = event["arrived"] - sent_at(event["heard"])
        event["behind"] = event["arrived"] - sent_at(event["end"])
    return {"code": code, "events": events}


async def load(url: str, audios: list[bytes], hop: float) -> list:
    delays = np.linspace(0, hop, len(audios), endpoint=False)
    streams = [one_stream(url, a, float(d)) for a, d in zip(audios, delays, strict=True)]
    return await asyncio.gather(*streams, return_exceptions=True)


@dataclass(frozen=True)
class Load:
    """One load: ``streams`` streams of ``seconds`` against one server (a row of the JSON)."""

    model: str
    streams: int
    seconds: float
    events: int
    segments: int
    dropped: int
    late_over_1s: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    behind_p50_s: float | None
    behind_p95_s: float | None
    server_cores: float
    client_cores: float
    rss_first_mb: float | None
    rss_max_mb: float | None
    rss_last_mb: float | None
    held: bool
    errors: list[str]


def sampled(server: Server, model: str, audios: list[bytes], rss: list[float]) -> list:
    """The streams' results (or exceptions), sampling the server's RSS into ``rss`` each second."""
    url = server.url.replace("http", "ws") + "/v1/stream"

    async def run() -> list:
        task = asyncio.create_task(load(url, audios, HOPS[model]))
        while not task.done():
            rss.append(memory(server.pid)["rss_mb"])
            await asyncio.sleep(1.0)
        return await task

    return asyncio.run(run())


def run_load(server: Server, model: str, streams: int, seconds: float, pool: list) -> Load:
    """``streams`` streams of ``seconds`` each against ``server``; latency, drops, CPU, RSS."""
    audios = [stream_audio(pool, seconds, seed) for seed in range(streams)]
    rss: list[float] = []
    cpu0, client0, began = cpu_seconds(server.pid), time.process_time(), time.perf_counter()
    results = sampled(server, model, audios, rss)
    wall = time.perf_counter() - began
    failed = [r for r in results if isinstance(r, BaseException)]
    done = [r for r in results if not isinstance(r, BaseException)]
    events = [e for r in done for e in r["events"]]
    segments = [e for e in events if e["type"] == "segment"]
    latency = [e["latency"] for e in events]
    behind = [e["behind"] for e in segments if e.get("label") != "no speech"]
    dropped = len(failed) + sum(r["code"] != 1000 for r in done)
    p95, late = percentile(latency, 95), sum(x > 1.0 for x in latency)
    row = Load(model, streams, seconds, len(events), len(segments), dropped, late,
               _ms(percentile(latency, 50)), _ms(p95), _ms(percentile(latency, 99)),
               _ms(max(latency, default=None)), _s(percentile(behind, 50)),
               _s(percentile(behind, 95)), round((cpu_seconds(server.pid) - cpu0) / wall, 2),
               round((time.process_time() - client0) / wall, 2), rss[0] if rss else None,
               max(rss, default=None), rss[-1] if rss else None,
               dropped == 0 and late == 0 and p95 is not None and p95 < 0.5,
               [repr(e)[:200] for e in failed[:3]])  # fmt: skip
    print(json.dumps(asdict(row)), flush=True)
    return row


def _s(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def measure(args: argparse.Namespace, pool: list) -> tuple[list[dict], dict | None]:
    """The ladder of loads per model, each against its own cold server (stopping far beyond
    capacity), and the long run on the first model's server."""
    rows, long_run = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            ladder = LADDERS[model][:2] if args.quick else LADDERS[model]
            server = Server(model, args.threads, args.precision, Path(tmp), timeout=120,
                            extra=("--max-streams", str(max(ladder) + 8)))  # fmt: skip
            try:
                for streams in ladder:
                    row = run_load(server, model, streams, args.seconds, pool)
                    rows.append(asdict(row) | {"startup_seconds": server.startup_seconds})
                    if row.dropped > streams // 2:
                        break  # far beyond capacity: no need to go higher
                if model == args.models[0]:
                    long_run = asdict(run_load(server, model, args.long_streams,
                                               args.long_seconds, pool))  # fmt: skip
            finally:
                server.stop()
    return rows, long_run


def main() -> None:
    parser = common.parser(__doc__, quick="small loads, short streams")
    parser.add_argument("--models", nargs="+", default=["fast", "accurate"])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each stream")
    parser.add_argument("--threads", type=int, default=2, help="the server's --threads")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--long-seconds", type=float, default=600.0)
    parser.add_argument("--long-streams", type=int, default=20)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.long_seconds, args.long_streams = 10.0, 20.0, 4
    start_cpu, before = common.cpu_snapshot(), common.load_average()
    rows, long_run = measure(args, speech_pool())
    results = {"machine": common.machine_info(), "load_before": before,
               "load_after": common.load_average(),
               "other_processes_cores": common.other_processes_cores(start_cpu),
               "threads": args.threads, "precision": args.precision, "rows": rows,
               "long_run": long_run, "capacity": capacity(rows)}  # fmt: skip
    common.report("live_streams", results, render_markdown, args)


def capacity(rows: list[dict]) -> dict:
    """The most streams held per model (None: not even the smallest load)."""
    out = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        held = [r["streams"] for r in rows if r["model"] == model and r["held"]]
        out[model] = max(held, default=None)
    return out


def render_markdown(results: dict) -> str:
    """The report (the JSON, as written or read back)."""
    keys = ["model", "streams", "held", "dropped", "late_over_1s", "latency_p50_ms",
            "latency_p95_ms", "latency_p99_ms", "behind_p50_s", "behind_p95_s", "server_cores",
            "client_cores", "rss_max_mb"]  # fmt: skip
    machine, long_run = results["machine"], results["long_run"]
    targets = {"fast": 100, "accurate": 20}
    checks = [[f"{m}: >= {goal} concurrent real-time streams",
               results["capacity"].get(m),
               "met" if (results["capacity"].get(m) or 0) >= goal else "MISSED"]
              for m, goal in targets.items() if m in results["capacity"]]  # fmt: skip
    parts = [
        "# Live streams over `WS /v1/stream` (one `emofuse serve`, clients on the same machine)",
        f"Machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores, torch "
        f"{machine['torch']}; server `--threads {results['threads']}`, {results['precision']}. "
        f"Load average before {results['load_before']}, after {results['load_after']}; other "
        f"processes kept {results['other_processes_cores']} cores busy on average. Each stream: "
        "real corpus speech with pauses, 100 ms chunks of 16 kHz PCM paced at real time. "
        "*latency*: event arrival minus the sending of the audio that decided it; *behind*: "
        "arrival of a speech segment minus the sending of the audio at its end (includes the "
        "wait for the next window). Held: no stream dropped, no event over 1 s late, p95 "
        "latency < 500 ms. Reproduce: `python bench/live_streams.py`.",
        "## Targets",
        common.markdown_table(["target", "most streams held", "status"], checks),
        "## Loads",
        common.markdown_table(keys, [[r[k] for k in keys] for r in results["rows"]]),
    ]
    if long_run:
        parts += [f"## A long run\n\n{long_run['streams']} {long_run['model']} streams of "
                  f"{long_run['seconds']:g} s (after the loads above): server RSS "
                  f"{long_run['rss_first_mb']} MB at its start, at most "
                  f"{long_run['rss_max_mb']} MB, {long_run['rss_last_mb']} MB at the end; p95 "
                  f"latency {long_run['latency_p95_ms']} ms, "
                  f"{long_run['dropped']} dropped."]  # fmt: skip
    return "\n\n".join(parts)


if __name__ == "__main__":
    main()
