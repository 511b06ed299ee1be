// emofuse web page: upload or record audio, show /v1/predict and /v1/timeline answers.
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

// One line per label (probability at each segment's middle); no-speech segments shaded.
function showTimeline(timeline) {
  const W = 720, H = 220, left = 36, right = 10, top = 10, bottom = 26;
  const chart = $("timeline");
  chart.textContent = "";
  chart.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const duration = Math.max(timeline.duration, 1e-6);
  const x = (t) => left + (W - left - right) * t / duration;
  const y = (p) => top + (H - top - bottom) * (1 - p);
  for (let p = 0; p <= 1.001; p += 0.25) {
    svg("line", { x1: left, x2: W - right, y1: y(p), y2: y(p), stroke: "#e6e9ef" }, chart);
    svg("text", { x: left - 4, y: y(p) + 4, "text-anchor": "end", "font-size": 10,
      fill: "#5b6475" }, chart).textContent = `${Math.round(100 * p)}%`;
  }
  const step = Math.max(1, Math.ceil(duration / 10));
  for (let t = 0; t <= duration; t += step) {
    svg("text", { x: x(t), y: H - 8, "text-anchor": "middle", "font-size": 10,
      fill: "#5b6475" }, chart).textContent = `${t}s`;
  }
  for (const s of timeline.segments) {
    if (s.speech) continue;
    const rect = svg("rect", { x: x(s.start), y: top, width: Math.max(1, x(s.end) - x(s.start)),
      height: H - top - bottom, fill: "#dfe3ea", "data-speech": "false" }, chart);
    svg("title", {}, rect).textContent = `${s.start.toFixed(1)}–${s.end.toFixed(1)} s: ` +
      `no speech${s.reason ? ` (${s.reason})` : ""}`;
  }
  const labels = model ? model.labels : labelOrder(
    (timeline.segments.find((s) => s.speech) || { probabilities: {} }).probabilities);
  const legend = $("timeline-legend");
  legend.textContent = "";
  labels.forEach((label, i) => {
    const color = COLORS[i % COLORS.length];
    // break the line at no-speech segments: one path piece per run of speech
    let d = "";
    let pen = "M";
    for (const s of timeline.segments) {
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
  $("timeline-figure").hidden = false;
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
  loadModel();
}

init();
