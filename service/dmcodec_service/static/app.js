// The playground: one audio clip -> POST /v1/encode -> POST /v1/decode, shown side by side.
// Plain browser JavaScript, no build step and nothing loaded from outside this service.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { audio: null, name: "", info: null, recorder: null, playheadFrame: -1, result: null };

function apiHeaders(extra = {}) {
  const key = $("api-key").value.trim();
  return key ? { ...extra, "X-API-Key": key } : extra;
}

// Error bodies are {"error": {"code", "message"}}; anything else gets a readable fallback.
async function apiError(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch (_) { /* not JSON */ }
  const retry = response.headers.get("Retry-After");
  if (response.status === 503 && retry) message += ` (the server asks to retry in ${retry} s)`;
  return new Error(`The service answered ${response.status}: ${message}`);
}

function showError(error) {
  $("error").textContent = error.message || String(error);
  $("error").hidden = false;
  $("status").textContent = "";
}

function setSource(blob, name) {
  state.audio = blob;
  state.name = name;
  $("source-name").textContent = `Chosen: ${name} (${(blob.size / 1024).toFixed(0)} KiB)`;
  $("run-button").disabled = false;
  $("error").hidden = true;
}

// --- model information --------------------------------------------------------------------
async function loadInfo() {
  try {
    const response = await fetch("v1/info", { headers: apiHeaders() });
    if (!response.ok) throw await apiError(response);
    const info = await response.json();
    state.info = info;
    const trained = info.metadata && info.metadata.training && info.metadata.training.trained;
    $("model-line").textContent = `Model ${info.model.name} (${info.model.sha256.slice(0, 12)}…), ` +
      `${info.model.backend}/${info.model.precision} on ${info.model.device}; ${info.n_q} levels × ` +
      `${info.codebook_size} codes at ${info.frame_rate} Hz; up to ${info.limits.max_audio_seconds} s of audio` +
      (trained === false ? ". This model is UNTRAINED: its audio is noise." : ".");
    const select = $("levels");
    for (let n = 1; n <= info.n_q; n++) select.add(new Option(`${n}`, `${n}`, n === info.n_q, n === info.n_q));
    updateBitrate();
  } catch (error) {
    showError(error);
  }
}

function updateBitrate() {
  if (!state.info) return;
  const n = Number($("levels").value);
  const kbps = (n * Math.log2(state.info.codebook_size) * state.info.frame_rate) / 1000;
  $("bitrate-preview").textContent = `${kbps.toFixed(2)} kbps`;
}

// --- input: file, drop, microphone --------------------------------------------------------
async function toggleRecording() {
  const button = $("record-button");
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    const recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (event) => chunks.push(event.data);
    recorder.onstop = async () => {
      stream.getTracks().forEach((track) => track.stop());
      state.recorder = null;
      button.setAttribute("aria-pressed", "false");
      button.textContent = "Record from microphone";
      // Sent as the browser recorded it (WebM/Opus, MP4/AAC, ...): the service reads those.
      const type = recorder.mimeType || "audio/webm";
      const blob = new Blob(chunks, { type });
      const extension = type.includes("mp4") ? "m4a" : type.includes("ogg") ? "ogg" : "webm";
      setSource(blob, `recording.${extension}`);
    };
    recorder.start();
    state.recorder = recorder;
    button.setAttribute("aria-pressed", "true");
    button.textContent = "Stop recording";
  } catch (error) {
    showError(new Error(`Microphone unavailable: ${error.message}`));
  }
}

// --- the round trip -----------------------------------------------------------------------
async function roundTrip(event) {
  event.preventDefault();
  if (!state.audio) return;
  $("error").hidden = true;
  $("run-button").disabled = true;
  try {
    $("status").textContent = "Encoding…";
    const form = new FormData();
    form.append("file", state.audio, state.name.includes(".") ? state.name : "recording.wav");
    form.append("n_q", $("levels").value);
    let started = performance.now();
    let response = await fetch("v1/encode", { method: "POST", body: form, headers: apiHeaders() });
    if (!response.ok) throw await apiError(response);
    const tokens = await response.json();
    const encodeMs = performance.now() - started;

    $("status").textContent = "Decoding…";
    started = performance.now();
    response = await fetch("v1/decode", { method: "POST", body: JSON.stringify(tokens),
                                          headers: apiHeaders({ "Content-Type": "application/json" }) });
    if (!response.ok) throw await apiError(response);
    const wav = await response.blob();
    const decodeMs = performance.now() - started;
    await showResult(tokens, wav, encodeMs, decodeMs);
    $("status").textContent = "Done.";
  } catch (error) {
    showError(error);
  } finally {
    $("run-button").disabled = false;
  }
}

async function showResult(tokens, wav, encodeMs, decodeMs) {
  state.result = tokens;
  const frames = tokens.frames, levels = tokens.n_q;
  const bitrate = (levels * Math.log2(tokens.codebook_size) * tokens.frame_rate) / 1000;
  const stats = [
    ["Duration", `${tokens.duration_s.toFixed(2)} s`], ["Levels × frames", `${levels} × ${frames}`],
    ["Tokens", `${levels * frames}`], ["Bitrate", `${bitrate.toFixed(2)} kbps`],
    ["Encode (round trip)", `${encodeMs.toFixed(0)} ms`], ["Decode (round trip)", `${decodeMs.toFixed(0)} ms`],
    ["Model", `${tokens.model.name}`], ["Backend", `${tokens.model.backend}/${tokens.model.precision}`],
  ];
  $("stats").replaceChildren(...stats.map(([term, value]) => {
    const div = document.createElement("div");
    const dt = document.createElement("dt"); dt.textContent = term;
    const dd = document.createElement("dd"); dd.textContent = value;
    div.append(dt, dd);
    return div;
  }));
  $("original-audio").src = URL.createObjectURL(state.audio);
  $("decoded-audio").src = URL.createObjectURL(wav);
  $("download-json").href = URL.createObjectURL(new Blob([JSON.stringify(tokens)], { type: "application/json" }));
  $("download-npy").href = URL.createObjectURL(npyBlob(tokens.codes));
  $("download-wav").href = $("decoded-audio").src;
  $("results").hidden = false;
  state.playheadFrame = -1;
  drawTokens(tokens, -1);
  const context = new AudioContext();
  for (const [blob, canvas] of [[state.audio, "original-spectrogram"], [wav, "decoded-spectrogram"]]) {
    try {
      drawSpectrogram(await context.decodeAudioData(await blob.arrayBuffer()), $(canvas));
    } catch (error) {
      $(canvas).setAttribute("aria-label", `No spectrogram: ${error.message}`);
    }
  }
}

// A uint16 .npy of codes [n_q][frames], as /v1/encode?format=npy returns.
function npyBlob(codes) {
  const rows = codes.length, cols = codes[0].length;
  let header = `{'descr': '<u2', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  const prefix = new Uint8Array(10 + header.length);
  prefix.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
  for (let i = 0; i < header.length; i++) prefix[10 + i] = header.charCodeAt(i);
  const data = new Uint16Array(rows * cols);
  codes.forEach((row, r) => data.set(row, r * cols));
  return new Blob([prefix, data.buffer], { type: "application/octet-stream" });
}

// --- drawing ------------------------------------------------------------------------------
function drawTokens(tokens, highlight) {
  const canvas = $("token-grid");
  const cell = 4, levels = tokens.n_q, frames = tokens.frames;
  canvas.width = frames * cell;
  canvas.height = levels * 16;
  canvas.style.width = `${Math.max(frames * cell, 300)}px`;
  const g = canvas.getContext("2d");
  for (let level = 0; level < levels; level++) {
    for (let f = 0; f < frames; f++) {
      const code = tokens.codes[level][f];
      g.fillStyle = `hsl(${(code / tokens.codebook_size) * 360}, 70%, ${45 + (code % 5) * 5}%)`;
      g.fillRect(f * cell, level * 16, cell, 16);
    }
  }
  if (highlight >= 0 && highlight < frames) {
    g.strokeStyle = "#000"; g.lineWidth = 2;
    g.strokeRect(highlight * cell + 1, 1, cell - 2, levels * 16 - 2);
  }
  canvas.dataset.highlight = String(highlight);
}

function followPlayhead(audio) {
  const tick = () => {
    if (!state.result) return;
    const frame = Math.min(state.result.frames - 1, Math.floor(audio.currentTime * state.result.frame_rate));
    if (frame !== state.playheadFrame) {
      state.playheadFrame = frame;
      drawTokens(state.result, frame);
    }
    if (!audio.paused) requestAnimationFrame(tick);
  };
  audio.addEventListener("play", () => requestAnimationFrame(tick));
  audio.addEventListener("seeked", tick);
}

function fft(re, im) {
  // In-place radix-2 FFT; length a power of two.
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) { [re[i], re[j]] = [re[j], re[i]]; [im[i], im[j]] = [im[j], im[i]]; }
  }
  for (let size = 2; size <= n; size <<= 1) {
    const angle = (-2 * Math.PI) / size;
    for (let start = 0; start < n; start += size) {
      for (let k = 0; k < size / 2; k++) {
        const wr = Math.cos(angle * k), wi = Math.sin(angle * k);
        const a = start + k, b = a + size / 2;
        const tr = re[b] * wr - im[b] * wi, ti = re[b] * wi + im[b] * wr;
        re[b] = re[a] - tr; im[b] = im[a] - ti; re[a] += tr; im[a] += ti;
      }
    }
  }
}

function drawSpectrogram(buffer, canvas) {
  const samples = buffer.getChannelData(0), size = 512, hop = Math.round(buffer.sampleRate / 100);
  const columns = Math.max(1, Math.floor((samples.length - size) / hop) + 1), bins = size / 2;
  canvas.width = columns; canvas.height = bins;
  const g = canvas.getContext("2d");
  const image = g.createImageData(columns, bins);
  const window = Float32Array.from({ length: size }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / size));
  for (let c = 0; c < columns; c++) {
    const re = new Float32Array(size), im = new Float32Array(size);
    for (let i = 0; i < size; i++) re[i] = (samples[c * hop + i] || 0) * window[i];
    fft(re, im);
    for (let b = 0; b < bins; b++) {
      const db = 10 * Math.log10(re[b] * re[b] + im[b] * im[b] + 1e-10);
      const v = Math.max(0, Math.min(255, ((db + 90) / 90) * 255));
      const p = ((bins - 1 - b) * columns + c) * 4;
      image.data[p] = v; image.data[p + 1] = v * v / 400; image.data[p + 2] = v * 0.3; image.data[p + 3] = 255;
    }
  }
  g.putImageData(image, 0, 0);
}

// --- wiring -------------------------------------------------------------------------------
function init() {
  $("file-input").addEventListener("change", (e) => e.target.files[0] && setSource(e.target.files[0], e.target.files[0].name));
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) setSource(file, file.name);
  });
  $("record-button").addEventListener("click", toggleRecording);
  $("levels").addEventListener("change", updateBitrate);
  $("controls").addEventListener("submit", roundTrip);
  followPlayhead($("original-audio"));
  followPlayhead($("decoded-audio"));
  loadInfo();
}

init();
