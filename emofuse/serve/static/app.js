// emofuse web page: upload or record audio, show /v1/predict and /v1/timeline answers; stream
// the microphone live to WS /v1/stream and show its events as they come.
// Plain ES2017, no dependencies; everything talks only to this server.
"use strict";

const $ = (id) => document.getElementById(id);
const COLORS = ["#2f6fdb", "#e8590c", "#1a9e5c", "#c2255c", "#7048e8", "#f08c00", "#0b7285",
  "#5c940d"];
const SVG_NS = "http://www.w3.org/2000/svg";
const KEY_STORAGE = "emofuse.apiKey";

let model = null;      // the /v1/model answer
let recorder = null;   // the active MediaRecorder
let busy = false;

// ---------- HTTP ----------

function headers() {
  const key = $("api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

async function api(path, blob, filename) {
  const init = { headers: headers() };
  if (blob) {
    const form = new FormData();
    form.append("file", blob, filename);
    init.method = "POST";
    init.body = form;
  }
  const response = await fetch(path, init);
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) {
    const detail = body && body.detail;
    const text = typeof detail === "string" ? detail : detail ? JSON.stringify(detail) : "";
    const error = new Error(text || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

// ---------- audio in the browser ----------

// Decode any audio the browser can read, resampled to `rate`; null when it cannot.
async function decode(blob, rate) {
  try {
    const context = new OfflineAudioContext(1, 1, rate);
    return await context.decodeAudioData(await blob.arrayBuffer());
  } catch (e) {
    return null;
  }
}

function mono(buffer) {
  const out = new Float32Array(buffer.length);
  for (let c = 0; c < buffer.numberOfChannels; c++) {
    const data = buffer.getChannelData(c);
    for (let i = 0; i < data.length; i++) out[i] += data[i] / buffer.numberOfChannels;
  }
  return out;
}

// A 16-bit PCM mono WAV file of float samples in [-1, 1].
function wavBlob(samples, rate) {
  const view = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true);
  view.setUint16(22, 1, true); view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([view], { type: "audio/wav" });
}

// ---------- analysis ----------

async function analyse(blob, filename) {
  if (busy) return;
  busy = true;
  document.body.dataset.state = "busy";
  clearOutput();
  setStatus(`Analysing ${filename}…`);
  try {
    const rate = (model && model.sample_rate) || 16000;
    const decoded = await decode(blob, rate);
    const duration = decoded ? decoded.duration : null;  // null: let the server decide
    const maxPredict = model ? model.max_predict_seconds : null;
    const windowSeconds = model ? model.window_seconds : 0;
    const tooLong = duration !== null && maxPredict && duration > maxPredict;
    let prediction = null;
    let timeline = null;
    if (!tooLong) {
      try {
        prediction = await api("/v1/predict", blob, filename);
      } catch (error) {
        if (error.status !== 422 || duration !== null) throw error;
        timeline = await api("/v1/timeline", blob, filename);  // too long for one prediction
      }
    }
    const long = duration !== null && windowSeconds && duration > 2 * windowSeconds;
    if (!timeline && (tooLong || long)) timeline = await api("/v1/timeline", blob, filename);
    if (prediction) showPrediction(prediction);
    else if (timeline) showPrediction(summary(timeline));
    if (timeline) showTimeline(timeline);
    setStatus(`${filename}: ${(prediction || timeline).duration.toFixed(1)} s analysed.`);
    document.body.dataset.state = "done";
  } catch (error) {
    showError(error.message);
    setStatus("");
    document.body.dataset.state = "error";
  } finally {
    busy = false;
  }
}

// A whole-clip answer from a timeline: duration-weighted mean over the speech segments.
function summary(timeline) {
  const totals = {};
  let weight = 0;
  for (const s of timeline.segments) {
    if (!s.speech) continue;
    const w = s.end - s.start;
    weight += w;
    for (const [label, p] of Object.entries(s.probabilities)) totals[label] = (totals[label] || 0) + w * p;
  }
  if (!weight) {
    const reason = timeline.segments.length ? timeline.segments[0].reason : null;
    return { label: "no speech", confidence: 0, probabilities: {}, speech: false, reason };
  }
  let best = null;
  for (const label of Object.keys(totals)) {
    totals[label] /= weight;
    if (best === null || totals[label] > totals[best]) best = label;
  }
  return { label: best, confidence: totals[best], probabilities: totals, speech: true,
    reason: "mean over the speech segments of a long recording" };
}

// ---------- output ----------

function setStatus(text) { $("status").textContent = text; }

function clearOutput() {
  $("error").hidden = true;
  $("error").textContent = "";
  $("result").hidden = true;
  $("timeline-figure").hidden = true;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = false;
}

function labelOrder(probabilities) {
  const known = model ? model.labels.filter((l) => l in probabilities) : [];
  return known.concat(Object.keys(probabilities).filter((l) => !known.includes(l)));
}

function showPrediction(p) {
  $("result-label").textContent = p.label;
  $("result-confidence").textContent = p.speech
    ? `${(100 * p.confidence).toFixed(1)}% confidence` : "";
  $("result-reason").textContent = p.reason || "";
  $("result-reason").hidden = !p.reason;
  const bars = $("bars");
  bars.textContent = "";
  for (const label of labelOrder(p.probabilities)) {
    const prob = p.probabilities[label];
    const percent = `${(100 * prob).toFixed(1)}%`;
    const bar = document.createElement("div");
    bar.className = label === p.label ? "bar top" : "bar";
    bar.dataset.label = label;
    bar.dataset.probability = String(prob);
    bar.setAttribute("role", "meter");
    bar.setAttribute("aria-label", label);
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "1");
    bar.setAttribute("aria-valuenow", String(prob));
    bar.setAttribute("aria-valuetext", percent);
    const name = document.createElement("span");
    name.textContent = label;
    const track = document.createElement("span");
    track.className = "bar-track";
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.display = "block";
    fill.style.width = percent;
    track.appendChild(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = percent;
    bar.append(name, track, value);
    bars.appendChild(bar);
  }
  $("result").hidden = false;
}

function svg(name, attributes, parent) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (parent) parent.appendChild(element);
  return element;
}

// The /v1/timeline answer as a chart (drawChart) under the result.
function showTimeline(timeline) {
  drawChart($("timeline"), $("timeline-legend"), timeline.segments, 0,
    Math.max(timeline.duration, 1e-6));
  $("timeline-figure").hidden = false;
}

// The chart of segments ({start, end, speech, probabilities, reason}) from `from` to `to`
// seconds: one line per label (its probability over each speech segment), no-speech segments
// shaded.
function drawChart(chart, legend, segments, from, to) {
  const W = 720, H = 220, left = 36, right = 10, top = 10, bottom = 26;
  chart.textContent = "";
  chart.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const span = Math.max(to - from, 1e-6);
  const x = (t) => left + (W - left - right) * (Math.min(Math.max(t, from), to) - from) / span;
  const y = (p) => top + (H - top - bottom) * (1 - p);
  for (let p = 0; p <= 1.001; p += 0.25) {
    svg("line", { x1: left, x2: W - right, y1: y(p), y2: y(p), stroke: "#e6e9ef" }, chart);
    svg("text", { x: left - 4, y: y(p) + 4, "text-anchor": "end", "font-size": 10,
      fill: "#5b6475" }, chart).textContent = `${Math.round(100 * p)}%`;
  }
  const step = Math.max(1, Math.ceil(span / 10));
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) {
    svg("text", { x: x(t), y: H - 8, "text-anchor": "middle", "font-size": 10,
      fill: "#5b6475" }, chart).textContent = `${t}s`;
  }
  const shown = segments.filter((s) => s.end > from && s.start < to);
  for (const s of shown) {
    if (s.speech) continue;
    const rect = svg("rect", { x: x(s.start), y: top, width: Math.max(1, x(s.end) - x(s.start)),
      height: H - top - bottom, fill: "#dfe3ea", "data-speech": "false" }, chart);
    svg("title", {}, rect).textContent = `${s.start.toFixed(1)}–${s.end.toFixed(1)} s: ` +
      `no speech${s.reason ? ` (${s.reason})` : ""}`;
  }
  const labels = model ? model.labels : labelOrder(
    (shown.find((s) => s.speech) || { probabilities: {} }).probabilities);
  legend.textContent = "";
  labels.forEach((label, i) => {
    const color = COLORS[i % COLORS.length];
    // break the line at no-speech segments: one path piece per run of speech
    let d = "";
    let pen = "M";
    for (const s of shown) {
      if (!s.speech || !(label in s.probabilities)) { pen = "M"; continue; }
      const p = s.probabilities[label];
      d += `${pen}${x(s.start).toFixed(1)},${y(p).toFixed(1)}L${x(s.end).toFixed(1)},${y(p).toFixed(1)}`;
      pen = "L";
    }
    if (d) svg("path", { d, fill: "none", stroke: color, "stroke-width": 2,
      "data-label": label }, chart);
    const key = document.createElement("span");
    key.style.setProperty("--swatch", color);
    key.textContent = label;
    legend.appendChild(key);
  });
}

// ---------- recording ----------

async function startRecording() {
  clearOutput();
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    showError("Recording is not supported by this browser (or the page is not served over " +
      "HTTPS or from localhost).");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    showError(`No microphone access: ${error.message}`);
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => { if (event.data.size) chunks.push(event.data); };
  recorder.onstop = async () => {
    stream.getTracks().forEach((track) => track.stop());
    $("record-start").disabled = false;
    $("record-stop").disabled = true;
    $("record-status").textContent = "";
    const rate = (model && model.sample_rate) || 16000;
    const decoded = await decode(new Blob(chunks, { type: recorder.mimeType }), rate);
    if (!decoded) { showError("Could not decode the recording."); return; }
    // the server reads WAV, not the WebM/Opus that MediaRecorder writes
    await analyse(wavBlob(mono(decoded), decoded.sampleRate), "recording.wav");
  };
  recorder.start();
  $("record-start").disabled = true;
  $("record-stop").disabled = false;
  $("record-status").textContent = "Recording…";
}

function stopRecording() {
  if (recorder && recorder.state !== "inactive") recorder.stop();
}

// ---------- live ----------
// The microphone, resampled to the model's rate (16 kHz), as 16-bit PCM over WS /v1/stream in
// chunks of 100 ms; the server's events (speech_start, partial, segment, speech_end) shown as
// they come. One stream at a time (`live`).

const LIVE_CHUNK_SECONDS = 0.1;
const LIVE_SHOWN_SECONDS = 30;      // the chart shows the last 30 s
const LIVE_CLOSE_WAIT_MS = 30000;   // after Stop, how long to wait for the server's last events
// The AudioWorklet: the microphone's frames mixed to mono, posted in blocks of 2048; on
// "flush", what is left and then {flushed: true}.
const LIVE_WORKLET = `
class EmofuseTap extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(2048);
    this.used = 0;
    this.port.onmessage = () => {
      this.port.postMessage(this.block.slice(0, this.used));
      this.used = 0;
      this.port.postMessage({ flushed: true });
    };
  }
  process(inputs) {
    const input = inputs[0];
    if (input && input.length) {
      const channels = input.length;
      for (let i = 0; i < input[0].length; i++) {
        let sum = 0;
        for (let c = 0; c < channels; c++) sum += input[c][i];
        this.block[this.used++] = sum / channels;
        if (this.used === this.block.length) {
          this.port.postMessage(this.block, [this.block.buffer]);
          this.block = new Float32Array(2048);
          this.used = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("emofuse-tap", EmofuseTap);
`;

let live = null;  // the stream in progress

// Resampling from `from` Hz to `to` Hz, block by block without gaps: each output sample is the
// mean of the input over its period (downsampling, a box anti-aliasing filter) or the linear
// interpolation between its two neighbours (upsampling).
class Resampler {
  constructor(from, to) {
    this.step = from / to;  // input samples per output sample
    this.need = this.step;  // input still to average into the next output sample
    this.sum = 0;
    this.pos = 0;           // upsampling: next output between `last` (0) and the next input (1)
    this.last = null;
  }

  push(input) {
    const out = new Float32Array(Math.ceil(input.length / this.step) + 3);
    let k = 0;
    if (this.step >= 1) {
      for (let i = 0; i < input.length; i++) {
        let rest = 1;
        while (rest > 0) {
          const take = Math.min(rest, this.need);
          this.sum += input[i] * take;
          this.need -= take;
          rest -= take;
          if (this.need <= 1e-9) {
            out[k++] = this.sum / this.step;
            this.sum = 0;
            this.need += this.step;
          }
        }
      }
    } else {
      for (let i = 0; i < input.length; i++) {
        const x = input[i];
        if (this.last === null) this.last = x;
        for (; this.pos < 1; this.pos += this.step) {
          out[k++] = this.last + (x - this.last) * this.pos;
        }
        this.pos -= 1;
        this.last = x;
      }
    }
    return out.subarray(0, k);
  }
}

function liveURL() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const key = $("api-key").value.trim();
  return `${scheme}//${location.host}/v1/stream${key ? `?key=${encodeURIComponent(key)}` : ""}`;
}

function setLiveState(state, text) {
  $("live-status").dataset.state = state;
  $("live-status").textContent = text;
}

function liveButtons(running) {
  $("live-start").disabled = running;
  $("live-stop").disabled = !running;
}

async function startLive() {
  if (live) return;
  $("error").hidden = true;
  $("error").textContent = "";
  if (!navigator.mediaDevices || !window.AudioWorkletNode || !window.WebSocket) {
    showError("Live mode is not supported by this browser (or the page is not served over " +
      "HTTPS or from localhost).");
    return;
  }
  const rate = (model && model.sample_rate) || 16000;
  const l = { ws: null, stream: null, context: null, node: null, resampler: null, rate,
    chunk: new DataView(new ArrayBuffer(2 * Math.round(rate * LIVE_CHUNK_SECONDS))), used: 0,
    queue: [], segments: [], heard: 0, count: 0, speechCount: 0,
    speaking: false, stopping: false, micDone: false, flushed: null, endPending: false,
    closeTimer: null, timedOut: false };
  live = l;
  liveButtons(true);
  setLiveState("connecting", "Connecting…");
  $("live-label").textContent = "…";
  $("live-label").classList.remove("live-past");
  $("live-confidence").textContent = "";
  drawLive(l);
  $("live-output").hidden = false;
  try {
    l.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    if (l.stopping) { stopMicrophone(l); finishLive(l, "Stopped."); return; }
    l.context = new AudioContext();
    const url = URL.createObjectURL(new Blob([LIVE_WORKLET], { type: "application/javascript" }));
    try { await l.context.audioWorklet.addModule(url); } finally { URL.revokeObjectURL(url); }
    await l.context.resume();
    l.resampler = new Resampler(l.context.sampleRate, rate);
    const source = l.context.createMediaStreamSource(l.stream);
    l.node = new AudioWorkletNode(l.context, "emofuse-tap", { numberOfOutputs: 1 });
    l.node.port.onmessage = (event) => liveFrames(l, event.data);
    const mute = l.context.createGain();  // keeps the graph pulled, plays nothing
    mute.gain.value = 0;
    source.connect(l.node);
    l.node.connect(mute);
    mute.connect(l.context.destination);
  } catch (error) {
    stopMicrophone(l);
    if (live === l) {
      showError(`No microphone access: ${error.message}`);
      finishLive(l, "Not started.", "error");
    }
    return;
  }
  if (l.stopping) { stopMicrophone(l); finishLive(l, "Stopped."); return; }
  openLiveSocket(l);
}

function openLiveSocket(l) {
  const ws = new WebSocket(liveURL());
  l.ws = ws;
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    ws.send(JSON.stringify({ sample_rate: l.rate, format: "pcm_s16le" }));
    for (const chunk of l.queue) ws.send(chunk);
    l.queue = [];
    if (l.endPending) ws.send(JSON.stringify({ event: "end" }));
    else if (!l.stopping) setLiveState("live", "Live: listening…");
  };
  ws.onmessage = (event) => {
    let message = null;
    try { message = JSON.parse(event.data); } catch (e) { return; }
    liveEvent(l, message);
  };
  ws.onclose = (event) => {
    clearTimeout(l.closeTimer);
    stopMicrophone(l);
    const heard = `${l.heard.toFixed(1)} s heard, ${l.count} segment${l.count === 1 ? "" : "s"}`;
    if (l.timedOut) {
      showError(`No answer from the server ${LIVE_CLOSE_WAIT_MS / 1000} s after Stop.`);
      finishLive(l, `Stopped: ${heard}.`, "error");
    } else if (event.code === 1000) {
      finishLive(l, `Ended: ${heard}.`);
    } else {
      const reason = event.reason ||
        (event.code === 1006 ? "the connection to the server was lost" : "closed");
      showError(reason);
      finishLive(l, `Closed by the server (code ${event.code}): ${heard}.`, "error");
    }
    $("live-status").dataset.code = String(event.code);
  };
}

// Frames from the worklet: resampled, as 16-bit little-endian PCM, in chunks of 100 ms.
function liveFrames(l, data) {
  if (data && data.flushed) {
    if (l.flushed) l.flushed();
    return;
  }
  if (l.micDone || !(data instanceof Float32Array)) return;
  const samples = l.resampler.push(data);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    l.chunk.setInt16(2 * l.used++, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    if (2 * l.used === l.chunk.byteLength) sendChunk(l);
  }
}

function sendChunk(l) {
  if (!l.used) return;
  const data = l.chunk.buffer.slice(0, 2 * l.used);
  l.used = 0;
  if (l.ws && l.ws.readyState === WebSocket.OPEN) l.ws.send(data);
  else if (!l.ws || l.ws.readyState === WebSocket.CONNECTING) l.queue.push(data);
}

function stopMicrophone(l) {
  l.micDone = true;
  if (l.stream) l.stream.getTracks().forEach((track) => track.stop());
  if (l.context && l.context.state !== "closed") l.context.close().catch(() => {});
}

async function stopLive() {
  const l = live;
  if (!l || l.stopping) return;
  l.stopping = true;
  $("live-stop").disabled = true;
  if (!l.ws) return;  // still starting: startLive stops
  setLiveState("ending", "Stopping: waiting for the last results…");
  if (l.node && !l.micDone) {  // the worklet's last frames first
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 500);
      l.flushed = () => { clearTimeout(timer); resolve(); };
      l.node.port.postMessage("flush");
    });
  }
  stopMicrophone(l);
  sendChunk(l);
  if (l.ws.readyState === WebSocket.OPEN) l.ws.send(JSON.stringify({ event: "end" }));
  else if (l.ws.readyState === WebSocket.CONNECTING) l.endPending = true;  // sent by onopen
  else return;  // already closed by the server
  l.closeTimer = setTimeout(() => { l.timedOut = true; l.ws.close(1000); }, LIVE_CLOSE_WAIT_MS);
}

function finishLive(l, text, state) {
  if (live !== l) return;
  live = null;
  liveButtons(false);
  setLiveState(state || "ended", text);
  $("live-label").classList.add("live-past");
  if (!l.count && $("live-label").textContent === "…") $("live-label").textContent = "—";
}

function liveEvent(l, e) {
  l.heard = Math.max(l.heard, Number(e.heard) || 0, Number(e.end) || 0);
  if (e.type === "speech_start") {
    l.speaking = true;
  } else if (e.type === "speech_end") {  // the label shown is now the last speech's
    l.speaking = false;
    $("live-label").classList.add("live-past");
  } else if (e.type === "partial") {  // the speech stretch so far: the current emotion
    showLiveLabel(e.label, e.confidence);
  } else if (e.type === "segment") {
    l.count++;
    l.segments.push({ start: e.start, end: e.end, speech: !e.silent, label: e.label,
      probabilities: e.probabilities || {}, reason: e.reason });
    if (!e.silent) {
      l.speechCount++;
      showLiveLabel(e.label, e.confidence);
    } else if (!l.speechCount) {
      showLiveLabel(e.label || "no speech", null);
    }
  }
  const from = l.heard - LIVE_SHOWN_SECONDS - 1;
  while (l.segments.length && l.segments[0].end < from) l.segments.shift();
  if (!l.stopping && live === l) {
    setLiveState("live", `Live: ${l.speaking ? "speech" : "listening"} · ${l.heard.toFixed(1)} s`);
  }
  drawLive(l);
}

function showLiveLabel(label, confidence) {
  const speech = confidence !== null && confidence !== undefined;
  $("live-label").textContent = label;
  $("live-label").classList.toggle("live-past", !speech);
  $("live-confidence").textContent = speech ? `${(100 * confidence).toFixed(1)}% confidence` : "";
}

function drawLive(l) {
  const to = Math.max(l.heard, 5);
  const from = Math.max(0, to - LIVE_SHOWN_SECONDS);
  drawChart($("live-timeline"), $("live-legend"), l.segments, from, to);
  const chart = $("live-timeline");
  chart.dataset.segments = String(l.count);
  chart.dataset.speechSegments = String(l.speechCount);
  chart.dataset.heard = l.heard.toFixed(3);
}

// ---------- setup ----------

async function loadModel() {
  try {
    model = await api("/v1/model");
    const version = model.version ? ` ${model.version}` : "";
    $("model-info").textContent = `Model ${model.name}${version}: ` +
      `${model.labels.join(", ")} (${model.sample_rate} Hz, windows of ${model.window_seconds} s).`;
  } catch (error) {
    $("model-info").textContent = `Model information unavailable: ${error.message}`;
  }
}

function init() {
  const key = $("api-key");
  try { key.value = localStorage.getItem(KEY_STORAGE) || ""; } catch (e) { /* no storage */ }
  key.addEventListener("change", () => {
    try { localStorage.setItem(KEY_STORAGE, key.value.trim()); } catch (e) { /* no storage */ }
    if (!model) loadModel();
  });

  const input = $("file-input");
  input.addEventListener("change", () => {
    if (input.files.length) analyse(input.files[0], input.files[0].name);
    input.value = "";  // choosing the same file again analyses it again
  });
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragover"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragover"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragover");
    const file = event.dataTransfer.files[0];
    if (file) analyse(file, file.name);
  });
  $("record-start").addEventListener("click", startRecording);
  $("record-stop").addEventListener("click", stopRecording);
  $("live-start").addEventListener("click", startLive);
  $("live-stop").addEventListener("click", stopLive);
  loadModel();
}

init();
