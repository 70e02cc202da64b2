// userstream dashboard: polls /api/snapshot and renders it. No framework, no build step.
"use strict";

const POLL_MS = 2000;
const HISTORY = 60; // rate points kept per stage for the sparklines
const rateHistory = {};
let failures = 0;

// the token came in the URL once; the server has set a cookie, so drop it from the address bar and history
if (new URLSearchParams(location.search).has("token")) {
  history.replaceState(null, "", location.pathname);
}

// --- small helpers -------------------------------------------------------------------------------
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svgEl(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const fmtInt = (v) => (isNum(v) ? Math.round(v).toLocaleString("en-US") : "n/a");
function fmtRate(v) {
  if (!isNum(v)) return "n/a";
  if (v >= 100) return `${Math.round(v).toLocaleString("en-US")}/s`;
  return `${v.toFixed(1)}/s`;
}
function fmtMs(v) {
  if (!isNum(v)) return "n/a";
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 60000) return `${(v / 1000).toFixed(2)} s`;
  return `${(v / 60000).toFixed(1)} min`;
}
function fmtTime(epoch) {
  if (!isNum(epoch)) return "n/a";
  return new Date(epoch * 1000).toLocaleTimeString("en-GB");
}
function fmtAge(seconds) {
  if (!isNum(seconds)) return "n/a";
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

function fillRows(tbody, rows, columns, emptyText) {
  tbody.replaceChildren();
  if (!rows.length) {
    tbody.append(el("tr", {}, el("td", { class: "empty", colspan: String(columns) }, emptyText)));
    return;
  }
  for (const cells of rows) {
    const tr = el("tr");
    for (const cell of cells) {
      if (cell && typeof cell === "object" && !(cell instanceof Node) && "v" in cell) {
        tr.append(el("td", { class: cell.cls || null }, cell.v));
      } else {
        tr.append(el("td", {}, cell));
      }
    }
    tbody.append(tr);
  }
}

function fillList(ul, items, emptyText) {
  ul.replaceChildren();
  if (!items.length) {
    ul.append(el("li", { class: "empty" }, emptyText));
    return;
  }
  for (const item of items) ul.append(item);
}

function setError(id, section) {
  const node = $(id);
  if (!node) return;
  const parts = [];
  if (section && section.error) parts.push(section.error);
  if (section && section.stale) parts.push("(slow backend: showing the previous answer)");
  node.textContent = parts.join(" ");
}

function kvs(container, pairs) {
  container.replaceChildren(...pairs.map(([k, v]) => el("div", {}, el("span", {}, k), el("b", {}, v))));
}

// --- sections ------------------------------------------------------------------------------------
function serviceMap(snap) {
  const map = {};
  for (const s of (snap.services && snap.services.services) || []) map[s.name] = s;
  return map;
}

function healthClass(services, names) {
  const known = names.filter((n) => services[n]);
  if (!known.length) return "unknown";
  if (known.every((n) => services[n].healthy)) return "ok";
  return "bad";
}

function renderPipeline(snap) {
  const services = serviceMap(snap);
  for (const stage of snap.stages || []) {
    const node = document.querySelector(`.node[data-stage="${stage.key}"]`);
    if (!node) continue;
    node.querySelector(".count").textContent = fmtInt(stage.count);
    const rate = node.querySelector(".rate");
    rate.textContent = `${fmtRate(stage.rate)}`;
    rate.classList.toggle("moving", isNum(stage.rate) && stage.rate > 0);
    node.querySelector(".err").textContent = stage.error || "";
    node.title = `${stage.label}: ${stage.counted_by}`;
    renderStageState(node, stage);
    const names = (node.dataset.services || "").split(",").filter(Boolean);
    const health = healthClass(services, names);
    node.querySelector(".dot").className = `dot ${stage.error ? "bad" : health}`;
    node.classList.toggle("bad", Boolean(stage.error));
    node.classList.toggle("live", isNum(stage.rate) && stage.rate > 0);
    const hist = (rateHistory[stage.key] = rateHistory[stage.key] || []);
    hist.push(isNum(stage.rate) ? stage.rate : 0);
    if (hist.length > HISTORY) hist.shift();
    const svg = node.querySelector("svg.spark");
    if (svg) drawSparkline(svg, hist);
  }
  // an arrow flows when the stage after it moves; it is red when its service is down
  const stageRate = Object.fromEntries((snap.stages || []).map((s) => [s.key, s.rate]));
  const arrows = document.querySelectorAll(".pipeline .arrow");
  const after = ["landed", "kafka", "spark", "cassandra"];
  arrows.forEach((arrow, i) => {
    const names = (arrow.dataset.services || "").split(",").filter(Boolean);
    arrow.classList.toggle("flowing", isNum(stageRate[after[i]]) && stageRate[after[i]] > 0);
    arrow.classList.toggle("down", healthClass(services, names) === "bad");
  });
  const lags = ((snap.kafka && snap.kafka.lags) || []).filter((l) => l.consumer.startsWith("spark:") && isNum(l.lag));
  $("side-lag").textContent = lags.length ? fmtInt(lags.reduce((a, l) => a + l.lag, 0)) : "n/a";
  const lat = snap.latency || {};
  const jobLat = (snap.spark && snap.spark.latency_ms) || {};
  $("side-p50").textContent = fmtMs(isNum(lat.p50_ms) ? lat.p50_ms : jobLat.p50);
  $("side-p99").textContent = fmtMs(isNum(lat.p99_ms) ? lat.p99_ms : jobLat.p99);
  const run = snap.ingest && snap.ingest.latest_run;
  $("side-run").textContent = run ? `#${run.run_id} ${run.status}` : "n/a";
}

// the watchdog's verdict on the step feeding this counter: a red "stalled" badge with its detail
function renderStageState(node, stage) {
  let badge = node.querySelector(".state");
  if (!badge) {
    badge = el("div", { class: "state" });
    node.querySelector(".node-sub").after(badge);
  }
  const stalled = stage.state === "stalled";
  badge.className = `state ${stage.state || "none"}`;
  badge.textContent = stalled ? `stalled: ${stage.state_detail}` : stage.state || "";
  badge.title = stage.state_detail || "";
  node.classList.toggle("stalled", stalled);
}

function renderHealth(snap) {
  const health = snap.health || {};
  setError("health-error", health);
  fillRows(
    $("health-stages"),
    (health.stages || []).map((v) => [
      { v: el("b", {}, v.stage), cls: "nowrap" },
      el("span", { class: `state ${v.state}` }, v.state),
      { v: fmtInt(v.backlog), cls: "num" },
      { v: isNum(v.waiting_s) ? `${Math.round(v.waiting_s)} s` : "n/a", cls: "num" },
      el("span", { class: v.state === "stalled" ? "err" : "hint" }, v.detail),
    ]),
    5,
    health.error ? "no verdict" : "no stage watched yet",
  );
  const stalled = (health.stages || []).filter((v) => v.state === "stalled").length;
  $("health-hint").textContent = (health.stages || []).length ? `${stalled} stalled` : "";
}

function drawSparkline(svg, values) {
  svg.replaceChildren();
  if (values.length < 2) return;
  const max = Math.max(...values, 1e-9);
  const step = 100 / (HISTORY - 1);
  const offset = 100 - (values.length - 1) * step;
  const pts = values.map((v, i) => `${(offset + i * step).toFixed(2)},${(23 - (v / max) * 21).toFixed(2)}`);
  svg.append(svgEl("polygon", { points: `${offset.toFixed(2)},24 ${pts.join(" ")} 100,24` }));
  svg.append(svgEl("polyline", { points: pts.join(" ") }));
}

function renderKafka(snap, settingsTopics) {
  const kafka = snap.kafka || {};
  setError("kafka-error", kafka);
  const topics = Object.values(kafka.topics || {});
  fillRows(
    $("kafka-topics"),
    topics.map((t) => [
      el("span", { class: "mono" }, t.topic),
      t.error ? el("span", { class: "err" }, t.error) : Object.keys(t.partitions).map((p) => el("span", { class: "chip", title: `partition ${p}` }, `p${p}: ${fmtInt(t.partitions[p])}`)).reduce((f, c) => (f.append(c), f), document.createDocumentFragment()),
      { v: t.error ? "n/a" : fmtInt(t.end_total), cls: "num" },
      { v: t.error ? "n/a" : fmtInt(t.retained), cls: "num" },
    ]),
    4,
    kafka.error ? "unavailable" : "no topics yet",
  );
  fillRows(
    $("kafka-lags"),
    (kafka.lags || []).map((l) => [
      el("span", { class: "mono" }, l.consumer),
      el("span", { class: "mono" }, l.topic),
      { v: fmtInt(l.lag), cls: "num" },
      el("span", { class: "hint" }, l.source),
    ]),
    4,
    "no consumer progress yet (the streaming job reports its offsets in progress.json)",
  );
  $("kafka-hint").textContent = kafka.measured_at ? `as of ${fmtTime(kafka.measured_at)}` : "";
  if (settingsTopics.users) $("users-topic-name").textContent = `${settingsTopics.users} (Avro)`;
  if (settingsTopics.dlq) $("dlq-topic-name").textContent = settingsTopics.dlq;
}

function renderSpark(snap) {
  const spark = snap.spark || {};
  const errors = [
    spark.error,
    spark.progress_error,
    spark.job_error ? `job: ${spark.job_error}` : null,
    spark.master_error ? `master: ${spark.master_error}` : null,
  ].filter(Boolean);
  $("spark-error").textContent = errors.join("\n");
  fillRows(
    $("spark-queries"),
    (spark.queries || []).map((q) => [
      el("span", { class: "mono" }, q.name),
      { v: fmtInt(q.batch_id), cls: "num" },
      { v: fmtInt(q.num_input_rows), cls: "num" },
      { v: fmtRate(q.input_rows_per_second), cls: "num" },
      { v: fmtRate(q.processed_rows_per_second), cls: "num" },
      { v: fmtMs(q.batch_duration_ms), cls: "num" },
      { v: fmtInt(q.offsets_behind), cls: "num" },
    ]),
    7,
    "no streaming query has reported yet",
  );
  const svg = $("spark-batches");
  svg.replaceChildren();
  const batches = spark.recent_batches || [];
  if (batches.length) {
    const maxD = Math.max(...batches.map((b) => (isNum(b.duration_ms) ? b.duration_ms : 0)), 1);
    const w = 300 / Math.max(batches.length, 30);
    batches.forEach((b, i) => {
      const h = Math.max(1, ((isNum(b.duration_ms) ? b.duration_ms : 0) / maxD) * 56);
      const rect = svgEl("rect", { x: (i * w + 0.5).toFixed(2), y: (60 - h).toFixed(2), width: Math.max(1, w - 1).toFixed(2), height: h.toFixed(2) });
      rect.append(svgEl("title", {}, `batch ${b.batch_id}: ${fmtInt(b.rows)} rows in ${fmtMs(b.duration_ms)}`));
      svg.append(rect);
    });
  } else {
    svg.append(svgEl("text", { x: 150, y: 34, "text-anchor": "middle", "font-size": 10, fill: "#8a96a3" }, "no batches yet"));
  }
  const lat = spark.latency_ms || {};
  kvs($("spark-kvs"), [
    ["job state", spark.job_state || "n/a"],
    ["written (valid)", fmtInt(spark.total_valid)],
    ["to DLQ", fmtInt(spark.total_dlq)],
    ["job latency p50", fmtMs(lat.p50)],
    ["job latency p95", fmtMs(lat.p95)],
    ["job latency p99", fmtMs(lat.p99)],
    ["progress updated", fmtAge(spark.progress_age_s)],
    ["master", spark.master_status || "n/a"],
    ["workers alive", fmtInt(spark.workers_alive)],
  ]);
  fillList(
    $("spark-apps"),
    (spark.apps || []).map((a) => el("li", {}, el("span", {}, el("b", {}, a.name), " ", el("span", { class: "mono hint" }, a.id)), el("span", { class: "when" }, `${a.state}${isNum(a.cores) ? ` · ${a.cores} cores` : ""}`))),
    spark.master_error ? "master unreachable" : "no application submitted",
  );
  $("spark-hint").textContent = spark.updated_at ? `progress ${fmtAge(spark.progress_age_s)}` : "";
}

function renderLatency(snap) {
  const lat = snap.latency || {};
  setError("latency-error", lat);
  const svg = $("latency-hist");
  svg.replaceChildren();
  const counts = lat.counts || [];
  const edges = lat.buckets_ms || [];
  const left = 8, bottom = 118, height = 96;
  const n = Math.max(counts.length, 1);
  const slot = (330 - left) / n;
  const max = Math.max(...counts, 1);
  svg.append(svgEl("line", { x1: left, y1: bottom + 0.5, x2: 330, y2: bottom + 0.5 }));
  const label = (ms) => (ms >= 60000 ? `${ms / 60000}m` : ms >= 1000 ? `${ms / 1000}s` : `${ms}ms`);
  counts.forEach((c, i) => {
    const h = (c / max) * height;
    const x = left + i * slot + 2;
    const rect = svgEl("rect", { class: "bar", x: x.toFixed(1), y: (bottom - h).toFixed(1), width: (slot - 4).toFixed(1), height: h.toFixed(1), rx: 2 });
    const range = i < edges.length ? `≤ ${label(edges[i])}` : `> ${label(edges[edges.length - 1])}`;
    rect.append(svgEl("title", {}, `${range}: ${c} rows`));
    svg.append(rect);
    if (c > 0) svg.append(svgEl("text", { class: "val", x: (x + (slot - 4) / 2).toFixed(1), y: (bottom - h - 3).toFixed(1), "text-anchor": "middle" }, String(c)));
    svg.append(svgEl("text", { x: (x + (slot - 4) / 2).toFixed(1), y: bottom + 12, "text-anchor": "middle" }, i < edges.length ? `≤${label(edges[i])}` : `>${label(edges[edges.length - 1])}`));
  });
  if (!lat.sample_size) {
    svg.append(svgEl("text", { x: 165, y: 60, "text-anchor": "middle" }, "no stored rows to sample yet"));
  }
  kvs($("latency-kvs"), [
    ["p50", fmtMs(lat.p50_ms)],
    ["p95", fmtMs(lat.p95_ms)],
    ["p99", fmtMs(lat.p99_ms)],
    ["max", fmtMs(lat.max_ms)],
    ["sample", fmtInt(lat.sample_size)],
  ]);
  $("latency-sample").textContent = lat.sample ? `sample: ${lat.sample}` : "";
}

function renderRejects(snap) {
  const pg = snap.postgres || {};
  const stages = Object.fromEntries((snap.stages || []).map((s) => [s.key, s]));
  $("rej-count").textContent = fmtInt(stages.rejected && stages.rejected.count);
  $("dlq-count").textContent = fmtInt(stages.dlq && stages.dlq.count);
  fillList(
    $("rej-reasons"),
    (pg.recent_rejects || []).map((r) => el("li", {}, el("span", { class: "reason" }, r.reason), el("span", { class: "when" }, fmtTime(r.at)))),
    pg.error ? "Postgres unavailable" : "no rejected records",
  );
  const kafka = snap.kafka || {};
  fillList(
    $("dlq-reasons"),
    (kafka.dlq_reasons || []).map((r) => el("li", {}, el("span", { class: "reason" }, r.reason), el("span", { class: "when" }, `× ${fmtInt(r.count)}`))),
    kafka.error ? "Kafka unavailable" : "no dead letters",
  );
}

function renderServices(snap) {
  const sec = snap.services || {};
  setError("services-error", sec);
  const list = sec.services || [];
  fillRows(
    $("services"),
    list.map((s) => [
      el("span", { class: `dot ${s.healthy ? "ok" : s.running ? "warn" : "bad"}` }),
      { v: el("b", {}, s.name), cls: "nowrap" },
      { v: s.external ? "external" : s.running ? "running" : "stopped", cls: "nowrap" },
      el("span", { class: "hint" }, s.detail),
    ]),
    4,
    "no status yet",
  );
  const healthy = list.filter((s) => s.healthy).length;
  $("services-hint").textContent = list.length ? `${healthy}/${list.length} healthy` : "";
}

function renderRegistry(snap) {
  const reg = snap.registry || {};
  setError("registry-error", reg);
  fillRows(
    $("subjects"),
    (reg.subjects || []).map((s) => {
      const chips = document.createDocumentFragment();
      for (const v of s.versions) chips.append(el("span", { class: "chip" }, `v${v}`));
      return [el("span", { class: "mono" }, s.name), chips, { v: fmtInt(s.latest_schema_id), cls: "num" }, s.compatibility || `${reg.compatibility || "n/a"} (global)`];
    }),
    4,
    reg.error ? "unavailable" : "no subjects yet (registered by the CDC converter on the first change)",
  );
  $("registry-hint").textContent = reg.compatibility ? `global: ${reg.compatibility}` : "";
}

function renderIngest(snap) {
  const ing = snap.ingest || {};
  setError("ingest-error", ing);
  const run = ing.latest_run;
  kvs($("ingest-kvs"), [
    ["runs", fmtInt(ing.runs)],
    ["requested", fmtInt(ing.requested)],
    ["landed", fmtInt(ing.landed)],
    ["duplicates", fmtInt(ing.duplicates)],
    ["rejected", fmtInt(ing.rejected)],
    ["latest run", run ? `#${run.run_id} (${run.seed})` : "n/a"],
    ["status", run ? run.status : "n/a"],
    ["started", run ? fmtTime(run.started_at) : "n/a"],
    // only with a schema that records it (the staging.ingest_runs.limited_by column)
    ...(run && run.limited_by ? [["limited by", run.limited_by]] : []),
  ]);
}

function renderCassandra(snap) {
  const cas = snap.cassandra || {};
  setError("cassandra-error", cas);
  fillRows(
    $("users"),
    (cas.latest_users || []).map((u) => [
      u.name,
      el("span", { class: "mono" }, u.email || ""),
      u.nat || "",
      fmtTime(u.fetched_at),
      fmtTime(u.written_at),
      { v: isNum(u.written_at) && isNum(u.fetched_at) ? fmtMs((u.written_at - u.fetched_at) * 1000) : "n/a", cls: "num" },
    ]),
    6,
    cas.error ? "Cassandra unavailable" : "no users stored yet",
  );
  fillRows(
    $("windows"),
    (cas.latest_windows || []).map((w) => [w.country, `${fmtTime(w.window_start)} – ${fmtTime(w.window_end)}`, { v: fmtInt(w.users), cls: "num" }]),
    3,
    cas.error ? "Cassandra unavailable" : cas.windows_error || "no windows yet",
  );
}

function renderLinks(snap) {
  const nav = $("links");
  const links = snap.links || {};
  nav.replaceChildren(...Object.entries(links).map(([name, url]) => el("a", { href: url, target: "_blank", rel: "noopener" }, name)), el("a", { href: "/metrics", target: "_blank" }, "/metrics"));
}

function render(snap) {
  // the collector lists the users topic first, then the DLQ
  const names = Object.keys((snap.kafka && snap.kafka.topics) || {});
  const topics = { users: names[0], dlq: names[1] };
  const sections = [
    () => renderPipeline(snap),
    () => renderKafka(snap, topics),
    () => renderSpark(snap),
    () => renderLatency(snap),
    () => renderRejects(snap),
    () => renderServices(snap),
    () => renderHealth(snap),
    () => renderRegistry(snap),
    () => renderIngest(snap),
    () => renderCassandra(snap),
  ];
  // one section's surprise (a field the server no longer sends) must not blank the others
  for (const fn of sections) {
    try {
      fn();
    } catch (err) {
      console.error(err);
    }
  }
  if (!$("links").childElementCount) renderLinks(snap);
  $("footer").textContent = `snapshot ${fmtTime(snap.taken_at)} · collected in ${Math.round(snap.collect_ms)} ms`;
}

function setLive(state, text) {
  $("live-dot").className = `dot ${state}`;
  $("live-text").textContent = text;
}

async function poll() {
  try {
    const response = await fetch("/api/snapshot", { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401) {
      $("banner").textContent = "Not authorised: open the URL printed by `userstream dashboard` (it ends in ?token=…).";
      $("banner").classList.remove("hidden");
      setLive("bad", "token required");
    } else if (!response.ok) {
      throw new Error(`HTTP ${response.status}`);
    } else {
      const snap = await response.json();
      render(snap);
      failures = 0;
      $("banner").classList.add("hidden");
      setLive("ok", `live · ${fmtTime(snap.taken_at)}`);
    }
  } catch (err) {
    failures += 1;
    setLive("bad", `dashboard unreachable (${failures})`);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
