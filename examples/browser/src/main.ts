// The page: reads the settings from the URL, starts the training worker at once, draws each step's loss
// and regularizer terms as they arrive, logs them as JSON lines, and offers the trained adapter's files.
import { LiveChart } from "./chart.js";
import { FALLBACK_COLORS, SERIES_COLORS } from "./colors.js";
import type { FromWorker, ToWorker } from "./protocol.js";
import { DATA_SETS, PRESETS, PROBE_QUESTION, queryOf, type RunSettings, runFromQuery } from "./query.js";

const $ = <E extends HTMLElement>(id: string) => document.getElementById(id) as E;
const form = $<HTMLFormElement>("settings");
const status = $("status");
const log = $("balora-log");
const charts = $("charts");

/** The main thread's heartbeat: it keeps ticking while the worker trains (the page stays responsive). */
let ticks = 0;
setInterval(() => ticks++, 50);
Object.defineProperty(window, "baloraTicks", { get: () => ticks });

const NO_WEBGPU_HELP =
  "This browser offers no WebGPU, so the page cannot train. Use a browser with WebGPU (Chrome or Edge 113+, Safari 26+, " +
  "Firefox 141+ on Windows), or enable it: in Chrome/Chromium open chrome://flags/#enable-unsafe-webgpu, set it to Enabled " +
  "and relaunch (on Linux also chrome://flags/#enable-vulkan); headless Chromium needs --enable-unsafe-webgpu.";

function showNoWebGPU(reason: string): void {
  const box = $("no-webgpu");
  box.hidden = false;
  box.textContent = `No WebGPU here (${reason}). ${NO_WEBGPU_HELP}`;
  status.textContent = "not training: no WebGPU";
  document.body.dataset.state = "no-webgpu";
}

function fillForm(run: RunSettings): void {
  for (const [k, v] of Object.entries(run)) (form.elements.namedItem(k) as HTMLInputElement).value = v === null ? "" : String(v);
}

function formRun(): RunSettings {
  const f = new FormData(form);
  return runFromQuery(`?${new URLSearchParams([...f.entries()].map(([k, v]) => [k, String(v)])).toString()}`);
}

/** The settings of the run in progress. */
let active: RunSettings = runFromQuery(location.search);
let worker: Worker | null = null;
let runId = 0;
let series: Map<string, LiveChart> = new Map();
const downloads: string[] = [];

function start(run: RunSettings): void {
  runId++;
  document.body.dataset.state = "starting";
  history.replaceState(null, "", queryOf(run));
  fillForm(run);
  charts.replaceChildren();
  series = new Map();
  log.textContent = "";
  $("before").textContent = "…";
  $("after").textContent = "…";
  $("downloads").hidden = true;
  for (const url of downloads.splice(0)) URL.revokeObjectURL(url);
  $("download-links").replaceChildren();
  if (!(navigator as { gpu?: unknown }).gpu) {
    showNoWebGPU("navigator.gpu is missing");
    return;
  }
  worker ??= makeWorker();
  const msg: ToWorker = { type: "start", run, id: runId, assets: new URL("./", location.href).href };
  worker.postMessage(msg);
}

function makeWorker(): Worker {
  const w = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
  w.onmessage = (e: MessageEvent<FromWorker>) => onMessage(e.data, active);
  w.onerror = (e) => {
    status.textContent = `the worker failed: ${e.message}`;
    document.body.dataset.state = "error";
  };
  return w;
}

function onMessage(m: FromWorker, run: RunSettings): void {
  if (m.id !== runId) return; // a previous run's last words
  switch (m.type) {
    case "status":
      status.textContent = m.text;
      break;
    case "no-webgpu":
      showNoWebGPU(m.reason);
      break;
    case "error":
      status.textContent = `error: ${m.message}`;
      document.body.dataset.state = "error";
      break;
    case "ready": {
      $("device").textContent = `WebGPU adapter: ${m.device}; ${m.trainable}; ${m.examples} training examples; ${m.adapter} init`;
      const names = ["loss", "task_loss", ...m.terms];
      names.forEach((n, i) => {
        const chart = new LiveChart(n, SERIES_COLORS[n] ?? FALLBACK_COLORS[i % FALLBACK_COLORS.length], run.steps);
        series.set(n, chart);
        charts.append(chart.svg);
      });
      document.body.dataset.state = "training";
      break;
    }
    case "generated":
      $(m.when).textContent = m.text;
      break;
    case "step": {
      const row = m.row;
      const entry: Record<string, number | boolean> = { step: row.step };
      for (const n of series.keys()) entry[n] = row[n];
      entry.lr = row.lr;
      entry.grad_norm = row.grad_norm;
      log.textContent += `${JSON.stringify(entry)}\n`;
      log.scrollTop = log.scrollHeight;
      for (const [n, chart] of series) chart.add(Number(row.step), Number(row[n]));
      status.textContent = `step ${row.step}/${run.steps}, loss ${Number(row.loss).toFixed(5)}`;
      break;
    }
    case "done": {
      const links = $("download-links");
      for (const f of m.files) {
        const url = URL.createObjectURL(new Blob([f.bytes as BlobPart]));
        downloads.push(url);
        const a = document.createElement("a");
        a.href = url;
        a.download = f.name;
        a.textContent = `download ${f.name} (${f.bytes.length.toLocaleString("en")} bytes)`;
        a.dataset.file = f.name;
        links.append(a);
      }
      $("downloads").hidden = false;
      status.textContent = `trained ${run.steps} steps in ${m.seconds.toFixed(1)} s`;
      document.body.dataset.state = "done";
      break;
    }
  }
}

for (const p of PRESETS) if (!form.querySelector(`option[value="${p}"]`)) throw new Error(`preset ${p} missing from the form`);
for (const d of DATA_SETS) if (!form.querySelector(`option[value="${d}"]`)) throw new Error(`data set ${d} missing from the form`);
$("probe").textContent = PROBE_QUESTION;

form.addEventListener("submit", (e) => {
  e.preventDefault();
  active = formRun();
  start(active);
});
start(active);
