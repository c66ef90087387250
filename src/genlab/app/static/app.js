// genlab explorer: plain JavaScript, no libraries, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
let card = null;
const SCALE_TARGET = 280; // on-screen width (px) that one model image is scaled towards

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const r = await fetch(path, opts);
  let doc;
  try { doc = await r.json(); } catch (e) { throw new Error(`${r.status} ${r.statusText}`); }
  if (!r.ok) throw new Error(doc.error || `${r.status} ${r.statusText}`);
  return doc;
}

function intOf(id) { return parseInt($(id).value, 10); }

// Integer upscaling: one model image towards SCALE_TARGET px, a wider figure (a grid) to at most MAX_WIDTH px.
const MAX_WIDTH = 720;
function scaleFor(width) {
  const shape = card.config.image_shape, w = shape[shape.length - 1];
  const s = Math.floor(SCALE_TARGET / Math.max(w, 1));
  return Math.max(1, width ? Math.min(s, Math.floor(MAX_WIDTH / width)) : s);
}

function show(img, doc) {
  img.src = "data:image/png;base64," + doc.image;
  img.style.width = doc.width * scaleFor(doc.width) + "px";
}

function figure(b64, caption) {
  const fig = document.createElement("figure");
  const img = document.createElement("img");
  img.className = "px";
  img.src = "data:image/png;base64," + b64;
  const shape = card.config.image_shape;
  img.style.width = shape[shape.length - 1] * scaleFor() + "px";
  const cap = document.createElement("figcaption");
  cap.textContent = caption;
  fig.append(img, cap);
  return fig;
}

// Run an async action with a status line; errors are shown, not thrown.
async function run(statusId, action) {
  const status = $(statusId);
  status.className = "muted";
  status.textContent = "working...";
  const t0 = performance.now();
  try {
    await action();
    status.textContent = `${((performance.now() - t0) / 1000).toFixed(2)} s`;
  } catch (e) {
    status.className = "error";
    status.textContent = e.message;
  }
}

function fmt(v) {
  if (typeof v !== "number") return JSON.stringify(v);
  return Number.isInteger(v) ? String(v) : v.toPrecision(5);
}

function table(rows) {
  const t = document.createElement("table");
  for (const [k, v] of rows) {
    const tr = t.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
  return t;
}

// ----------------------------------------------------------------- model card

function chart(name, points) {
  const c = document.createElement("canvas");
  c.className = "chart";
  c.width = 240; c.height = 120;
  const g = c.getContext("2d");
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const px = (x) => 30 + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * 200;
  const py = (y) => 100 - (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5) * 85;
  g.font = "11px sans-serif"; g.fillStyle = "#333";
  g.fillText(`${name}: ${fmt(ys[ys.length - 1])}`, 4, 12);
  g.fillStyle = "#888";
  g.fillText(fmt(y1), 2, 24); g.fillText(fmt(y0), 2, 104); g.fillText(`step ${x1}`, 170, 116);
  g.strokeStyle = "#2a5bd7"; g.beginPath();
  points.forEach((p, i) => (i ? g.lineTo(px(p[0]), py(p[1])) : g.moveTo(px(p[0]), py(p[1]))));
  g.stroke();
  return c;
}

function renderCard() {
  $("title").textContent = `${card.name} (${card.class})`;
  $("summary").textContent = card.summary;
  const caps = card.capabilities;
  const names = ["sample", "latent", "manifold", "reconstruct", "log_prob", "translate"];
  $("caps").innerHTML = "";
  for (const n of names) {
    const s = document.createElement("span");
    s.className = "chip" + (caps[n] ? "" : " off");
    s.textContent = n;
    $("caps").append(s);
  }
  const facts = [["parameters", card.parameters.toLocaleString()], ["data kind", caps.kind],
    ["image shape", card.config.image_shape.join(" x ")], ["input", card.input_mode || "?"]];
  if (caps.latent_dim) facts.push(["latent dimensions", caps.latent_dim]);
  if (caps.num_classes) facts.push(["classes", caps.num_classes]);
  if (card.data) facts.push(["trained on", `${card.data.name}`]);
  if (card.run) facts.push(["run", card.run]);
  $("card-facts").append(table(facts));
  $("config").textContent = JSON.stringify({ model: card.config, train: card.train, data: card.data }, null, 2);
  const m = card.metrics;
  if (m) {
    const h = document.createElement("p");
    h.textContent = `training log: ${m.records} records, last step ${m.last_step}`;
    const charts = document.createElement("div");
    charts.className = "charts";
    const keys = Object.keys(m.series).filter((k) => /loss|elbo|nll|bpd|kl|recon/.test(k) && !/weight|lr$/.test(k));
    for (const k of keys.slice(0, 6)) if (m.series[k].length > 1) charts.append(chart(k, m.series[k]));
    $("metrics").append(h, charts);
  } else {
    $("metrics").innerHTML = '<p class="muted">no metrics.jsonl in this folder</p>';
  }
  if (card.eval) {
    const d = document.createElement("details");
    d.innerHTML = "<summary>eval.json</summary>";
    const pre = document.createElement("pre");
    pre.textContent = JSON.stringify(card.eval, null, 2);
    d.append(pre);
    $("metrics").append(d);
  }
}

// ----------------------------------------------------------------- samples

function labelsFrom(text) {
  const t = text.trim();
  if (!t) return undefined;
  return t.split(",").filter((v) => v.trim()).map((v) => parseInt(v, 10));
}

function drawSamples() {
  return run("s-status", async () => {
    const body = { n: intOf("s-n"), seed: intOf("s-seed") };
    if (card.capabilities.num_classes) body.labels = labelsFrom($("s-labels").value);
    show($("s-img"), await api("/api/samples", body));
  });
}

// ----------------------------------------------------------------- latent space

const NSLIDERS = 10;
let latentBusy = false, latentPending = false;

function latentBody(withValues) {
  const body = { seed: intOf("l-seed") };
  if (card.capabilities.num_classes) body.label = intOf("l-label");
  if (withValues) body.values = [...document.querySelectorAll("#l-sliders input")].map((s) => parseFloat(s.value));
  return body;
}

function setSliders(z) {
  document.querySelectorAll("#l-sliders input").forEach((s, i) => {
    s.value = z[i];
    $(`l-v${i}`).textContent = z[i].toFixed(2);
  });
}

async function decodeLatent(withValues) {
  if (latentBusy) { latentPending = true; return; }
  latentBusy = true;
  await run("l-status", async () => {
    const doc = await api("/api/latent", latentBody(withValues));
    show($("l-img"), doc);
    if (!withValues) setSliders(doc.z);
  });
  latentBusy = false;
  if (latentPending) { latentPending = false; decodeLatent(true); }
}

function buildSliders() {
  const k = Math.min(card.capabilities.latent_dim, NSLIDERS);
  const box = $("l-sliders");
  for (let i = 0; i < k; i++) {
    const name = document.createElement("span");
    name.textContent = `z${i}`;
    const s = document.createElement("input");
    Object.assign(s, { type: "range", min: -3, max: 3, step: 0.05, value: 0 });
    const v = document.createElement("span");
    v.id = `l-v${i}`;
    s.addEventListener("input", () => { v.textContent = parseFloat(s.value).toFixed(2); decodeLatent(true); });
    box.append(name, s, v);
  }
}

function interpolate() {
  return run("i-status", async () => {
    const body = { seed_a: intOf("i-a"), seed_b: intOf("i-b"), steps: intOf("i-steps"), method: $("i-method").value };
    if (card.capabilities.num_classes) body.label = intOf("l-label");
    show($("i-img"), await api("/api/interpolate", body));
  });
}

function manifold() {
  return run("m-status", async () => {
    const body = { n: intOf("m-n"), dims: [intOf("m-i"), intOf("m-j")] };
    if (card.capabilities.num_classes) body.label = intOf("l-label");
    show($("m-img"), await api("/api/manifold", body));
  });
}

// ----------------------------------------------------------------- your image

function readFile(input) {
  return new Promise((resolve, reject) => {
    const f = input.files[0];
    if (!f) { reject(new Error("choose an image file first")); return; }
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(new Error("could not read the file"));
    r.readAsDataURL(f);
  });
}

function analyze(dataUrl) {
  return run("u-status", async () => {
    const caps = card.capabilities;
    const body = { image: dataUrl, fit: $("u-fit").checked, seed: intOf("u-seed") };
    if (caps.num_classes) body.label = intOf("u-label");
    if (caps.importance_sampled) body.iw_samples = intOf("u-iw");
    const doc = await api("/api/analyze", body);
    const out = $("u-out"), facts = $("u-facts");
    out.innerHTML = ""; facts.innerHTML = "";
    out.append(figure(doc.input, "input (model size)"));
    if (doc.model_input) out.append(figure(doc.model_input, "as the model sees it (binarized)"));
    if (doc.reconstruction) out.append(figure(doc.reconstruction, "reconstruction decode(mean of q(z|x))"));
    if (doc.likelihood) {
      const L = doc.likelihood;
      const rows = [["log p(x) (model, nats)", fmt(L.log_prob_nats)], ["NLL (nats)", fmt(L.nll_nats)],
        ["bits / dim", fmt(L.bits_per_dim)], ["estimator", L.estimator]];
      if (L.offset_nats) rows.push(["offset to the discrete likelihood (nats)", fmt(L.offset_nats)]);
      if (L.conditional_on_label !== null) rows.push(["conditioned on label", L.conditional_on_label]);
      facts.append(table(rows));
    }
    if (doc.outlier) {
      const o = doc.outlier, p = document.createElement("p");
      if (!o.available) {
        p.className = "muted"; p.textContent = `outlier score: ${o.reason}`; facts.append(p);
      } else {
        const k = o.iw_samples ? `, both scored with k = ${o.iw_samples} importance samples` : "";
        p.textContent = `Compared with ${o.reference}${k} (percent of those images scoring lower; high = unusual):`;
        facts.append(p, table([
          ["NLL bits/dim", `${fmt(o.nll_bits_per_dim.value)}  (reference ${fmt(o.nll_bits_per_dim.reference_mean)} +- ${fmt(o.nll_bits_per_dim.reference_std)}): ${o.nll_bits_per_dim.percentile.toFixed(1)}%`],
          ["complexity-corrected (Serra et al. 2020)", `${fmt(o.complexity.value)}  (reference ${fmt(o.complexity.reference_mean)} +- ${fmt(o.complexity.reference_std)}): ${o.complexity.percentile.toFixed(1)}%`],
        ]));
      }
    }
  });
}

function setupPad() {
  const pad = $("pad"), shape = card.config.image_shape;
  pad.width = shape[2]; pad.height = shape[1];
  pad.style.width = shape[2] * scaleFor() + "px";
  const g = pad.getContext("2d");
  const clear = () => { g.fillStyle = "black"; g.fillRect(0, 0, pad.width, pad.height); };
  clear();
  let down = false;
  const at = (e) => {
    const r = pad.getBoundingClientRect();
    return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
  };
  const dot = (e) => {
    const [x, y] = at(e);
    g.fillStyle = "white"; g.beginPath();
    g.arc(x, y, Math.max(1, pad.width / 18), 0, 2 * Math.PI); g.fill();
  };
  pad.addEventListener("pointerdown", (e) => { down = true; pad.setPointerCapture(e.pointerId); dot(e); });
  pad.addEventListener("pointermove", (e) => { if (down) dot(e); });
  pad.addEventListener("pointerup", () => { down = false; });
  $("u-clear").onclick = clear;
  $("u-use").onclick = () => analyze(pad.toDataURL("image/png"));
}

// ----------------------------------------------------------------- translation

function translate() {
  return run("t-status", async () => {
    const image = await readFile($("t-file"));
    const doc = await api("/api/translate", { image, direction: $("t-dir").value, fit: $("t-fit").checked });
    $("t-out").innerHTML = "";
    $("t-out").append(figure(doc.input, "input"), figure(doc.image, doc.direction === "a2b" ? "A to B" : "B to A"));
  });
}

// ----------------------------------------------------------------- start

async function main() {
  try {
    card = await api("/api/card");
  } catch (e) {
    $("global-error").textContent = "could not load the model card: " + e.message;
    return;
  }
  renderCard();
  const caps = card.capabilities;
  if (caps.num_classes) {
    document.querySelectorAll(".cond").forEach((el) => el.classList.remove("hidden"));
    for (const id of ["l-label", "u-label"]) $(id).max = caps.num_classes - 1;
  }
  if (caps.sample) {
    $("samples").classList.remove("hidden");
    $("s-n").max = caps.kind === "points" ? card.limits.points : card.limits.samples;
    if (caps.kind === "points") $("s-n").value = 1000;
    $("s-go").onclick = drawSamples;
    $("s-next").onclick = () => { $("s-seed").value = intOf("s-seed") + 1; drawSamples(); };
    drawSamples();
  }
  if (caps.latent) {
    $("latent").classList.remove("hidden");
    buildSliders();
    $("l-reset").onclick = () => decodeLatent(false);
    $("l-seed").onchange = () => decodeLatent(false);
    $("l-label").onchange = () => decodeLatent(true);
    $("i-steps").max = card.limits.frames;
    $("i-go").onclick = interpolate;
    await decodeLatent(false);
    interpolate();
    if (caps.manifold) {
      $("manifold").classList.remove("hidden");
      $("m-n").max = card.limits.manifold;
      $("m-note").textContent = caps.latent_dim === 2
        ? "The whole 2-D latent space on the prior's quantiles (Kingma & Welling 2014, Fig. 4)."
        : `A 2-D slice: the other ${caps.latent_dim - 2} dimensions are held at 0.`;
      $("m-go").onclick = manifold;
      if (caps.latent_dim === 2) manifold();
    }
  }
  if (caps.analyze) {
    $("upload").classList.remove("hidden");
    if (caps.importance_sampled) { $("u-iw-box").classList.remove("hidden"); $("u-iw").max = card.limits.iw_samples; }
    $("u-file").onchange = () => readFile($("u-file")).then(analyze, (e) => { $("u-status").textContent = e.message; });
    setupPad();
  }
  if (caps.translate) {
    $("translate").classList.remove("hidden");
    $("t-go").onclick = translate;
  }
}

main();
