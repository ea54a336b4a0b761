// The session page: draws what the device sends over its WebSocket; buttons post to the device.
// Everything here is served by the device itself; nothing is loaded from anywhere else.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
let csrf = document.querySelector('meta[name="csrf-token"]').content;
let socket = null;
let state = null;
let lastCueSeq = 0;
let cueEnd = 0;
let audio = null;

function $(id) { return document.getElementById(id); }

function svgElement(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (parent) parent.appendChild(element);
  return element;
}

function drawHead(svg) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  svgElement("path", { d: "M -0.12 -0.99 L 0 -1.15 L 0.12 -0.99", class: "outline" }, svg);
  svgElement("ellipse", { cx: -1.02, cy: 0, rx: 0.07, ry: 0.18, class: "outline" }, svg);
  svgElement("ellipse", { cx: 1.02, cy: 0, rx: 0.07, ry: 0.18, class: "outline" }, svg);
  svgElement("circle", { cx: 0, cy: 0, r: 1, class: "outline" }, svg);
}

function label(svg, x, y, text) {
  const element = svgElement("text", { x: x, y: -y, class: "label" }, svg);
  element.textContent = text;
  return element;
}

function drawLandmarks(svg, layout) {
  for (const [name, [x, y]] of Object.entries(layout.landmarks)) {
    svgElement("circle", { cx: x, cy: -y, r: 0.025, class: "landmark" }, svg);
    label(svg, x, y - 0.07, name);
  }
}

function drawSignal(snapshot) {
  const svg = $("signal-head");
  drawHead(svg);
  drawLandmarks(svg, snapshot.layout);
  for (const [name, [x, y]] of Object.entries(snapshot.layout.worn)) {
    const signal = snapshot.signal[name] || { state: "none" };
    const dot = svgElement("circle", { cx: x, cy: -y, r: 0.085, class: "electrode " + signal.state,
                                       "data-electrode": name, "data-state": signal.state }, svg);
    svgElement("title", {}, dot).textContent = name + ": " + signal.state;
    label(svg, x, y, name).setAttribute("fill", "white");
  }
  const advice = $("signal-advice");
  advice.replaceChildren();
  for (const signal of Object.values(snapshot.signal)) {
    if (signal.advice) {
      const item = document.createElement("li");
      item.textContent = signal.advice;
      advice.appendChild(item);
    }
  }
  const states = Object.values(snapshot.signal).map((s) => s.state);
  $("signal-summary").textContent = !snapshot.receiving ? "No signal from the headset."
    : states.includes("bad") ? "Red electrodes need attention before the movements count."
    : states.includes("warning") ? "Usable; the yellow electrodes could be better."
    : states.every((s) => s === "good") ? "All electrodes give a good signal." : "Checking the signal…";
}

function drawContact(contact) {
  const body = $("contact-table").tBodies[0];
  body.replaceChildren();
  for (const electrode of contact.electrodes) {
    const row = body.insertRow();
    row.dataset.electrode = electrode.electrode;
    row.dataset.state = electrode.state;
    const dot = document.createElement("span");
    dot.className = "dot " + electrode.state;
    row.insertCell().appendChild(dot);
    row.insertCell().textContent = electrode.electrode;
    row.insertCell().textContent = electrode.impedance_kohm === null ? "—" : electrode.impedance_kohm + " kΩ";
    row.insertCell().textContent = electrode.advice;
  }
  $("contact-summary").textContent = !contact.available ? "This board cannot measure electrode contact."
    : contact.running ? "Measuring " + (contact.measuring || "") + "… keep still."
    : contact.passed === true ? "All electrodes touch the skin well enough."
    : contact.passed === false ? "Some electrodes need attention; then check again."
    : "Put on the cap, then press \u201cCheck the electrodes\u201d.";
}

function drawCue(snapshot) {
  const cue = snapshot.cue;
  const box = $("cue");
  box.className = cue ? cue.kind : "";
  if (!cue) {
    $("cue-text").textContent = snapshot.session.running ? "Get ready."
      : snapshot.result ? "Session finished." : "Waiting to start.";
    $("cue-count").textContent = "";
    return;
  }
  $("cue-text").textContent = cue.text;
  if (cue.seq !== lastCueSeq) {
    lastCueSeq = cue.seq;
    cueEnd = performance.now() + cue.remaining_s * 1000;
    beep(cue.kind);
  }
}

function tick() {
  if (state && state.cue && state.cue.kind !== "done") {
    const left = Math.max(0, (cueEnd - performance.now()) / 1000);
    $("cue-count").textContent = Math.ceil(left).toString();
  } else {
    $("cue-count").textContent = "";
  }
}

function drawResult(snapshot) {
  const result = snapshot.result;
  $("result").hidden = !result;
  if (!result) return;
  $("result").dataset.kind = result.kind;
  $("result-headline").textContent = result.headline;
  $("result-placement").textContent = result.placement ? result.placement.text : "";
  $("result-uncertainty").textContent = result.uncertainty;
  $("result-consistency").textContent = result.consistency;
  const reasons = $("result-reasons");
  reasons.replaceChildren();
  for (const reason of result.reasons) {
    const item = document.createElement("li");
    item.textContent = reason;
    reasons.appendChild(item);
  }
  const svg = $("result-head");
  drawHead(svg);
  drawLandmarks(svg, snapshot.layout);
  svg.parentElement.hidden = !result.marks;
  const marks = result.marks;
  if (!marks) return;
  const target = marks.target;
  if (target && marks.radius) {
    svgElement("circle", { cx: target[0], cy: -target[1], r: marks.radius, class: "radius" }, svg);
  }
  if (marks.electrode) {
    const [x, y] = marks.electrode;
    svgElement("circle", { cx: x, cy: -y, r: 0.07, class: "electrode none", id: "result-electrode" }, svg);
    label(svg, x, y + 0.12, marks.electrode_name);
    if (target) {
      svgElement("line", { x1: x, y1: -y, x2: target[0], y2: -target[1], class: "offset" }, svg);
    }
  }
  if (target) {
    svgElement("circle", { cx: target[0], cy: -target[1], r: 0.05, class: "target", id: "result-target" }, svg);
  }
}

function render(snapshot) {
  state = snapshot;
  $("connection").textContent = snapshot.paired ? "Connected and paired." : "Connected (watching only).";
  const steps = $("steps");
  steps.replaceChildren();
  for (const step of snapshot.steps) {
    const item = document.createElement("li");
    item.textContent = step.title;
    item.className = step.status;
    item.dataset.step = step.id;
    steps.appendChild(item);
  }
  $("notice").hidden = !snapshot.notice;
  $("notice").textContent = snapshot.notice;
  $("pairing").hidden = snapshot.paired;
  $("controls").hidden = !snapshot.paired;
  $("start-button").disabled = Boolean(snapshot.start_blocker);
  $("start-button").title = snapshot.start_blocker;
  $("stop-button").disabled = !snapshot.session.running;
  $("contact-button").disabled = !snapshot.contact.available || snapshot.contact.running || snapshot.session.running;
  $("contact").hidden = !snapshot.contact.available;
  drawContact(snapshot.contact);
  drawSignal(snapshot);
  drawCue(snapshot);
  const session = snapshot.session;
  $("progress").textContent = session.n_trials
    ? `Movement ${session.trial} of ${session.n_trials} · ${session.done} done · ${session.good} good` : "";
  drawResult(snapshot);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  socket = new WebSocket(scheme + location.host + "/ws");
  socket.onmessage = (event) => render(JSON.parse(event.data));
  socket.onclose = () => {
    $("connection").textContent = "Connection to the device lost; retrying…";
    setTimeout(connect, 2000);
  };
}

function reconnect() {
  if (socket) {
    socket.onclose = null;
    socket.close();
  }
  connect();
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body || {}),
    credentials: "same-origin",
  });
  let data = {};
  try { data = await response.json(); } catch (error) { data = {}; }
  return { ok: response.ok, status: response.status, data: data, headers: response.headers };
}

function beep(kind) {
  if (!audio) return;
  const tones = { move: [880, 0.35], stop: [660, 0.2], rest: [440, 0.15], done: [1046, 0.6] };
  const [frequency, seconds] = tones[kind] || [440, 0.1];
  const oscillator = audio.createOscillator();
  const gain = audio.createGain();
  oscillator.frequency.value = frequency;
  gain.gain.setValueAtTime(0.25, audio.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + seconds);
  oscillator.connect(gain).connect(audio.destination);
  oscillator.start();
  oscillator.stop(audio.currentTime + seconds);
}

function enableSound() {
  if (!audio) {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (Context) audio = new Context();
  }
  if (audio && audio.state === "suspended") audio.resume();
  $("sound-button").textContent = "Sound is on";
}

async function action(name) {
  enableSound();
  const reply = await post("/api/" + name);
  $("control-message").textContent = reply.ok ? "" : (reply.data.error || "The device refused.");
}

document.addEventListener("DOMContentLoaded", () => {
  $("pair-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    enableSound();
    const reply = await post("/api/pair", { code: $("pair-code").value });
    if (reply.ok) {
      csrf = reply.headers.get("X-CSRF-Token") || csrf;
      document.querySelector('meta[name="csrf-token"]').content = csrf;
      $("pair-message").textContent = "";
      $("pair-code").value = "";
      reconnect();
    } else {
      $("pair-message").textContent = reply.data.error || "Pairing failed.";
    }
  });
  $("contact-button").addEventListener("click", () => action("contact"));
  $("start-button").addEventListener("click", () => action("start"));
  $("stop-button").addEventListener("click", () => action("stop"));
  $("sound-button").addEventListener("click", enableSound);
  $("unpair-button").addEventListener("click", async () => {
    await post("/api/unpair");
    reconnect();
  });
  connect();
  setInterval(tick, 200);
});
