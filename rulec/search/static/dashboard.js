// rulec search dashboard: reads the server's JSON API (rulec/search/dashboard.py)
// and draws with plain SVG; no library, nothing fetched from the network.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 3000;
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
let current = { run: null, rule: null };

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function fmt(x, digits = 3) {
  return x === null || x === undefined ? "—" : Number(x).toFixed(digits);
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  current.run = params.get("run") ? Number(params.get("run")) : current.run;
  current.rule = params.get("rule") !== null ? Number(params.get("rule")) : null;
}

function writeHash() {
  const parts = [];
  if (current.run !== null) parts.push(`run=${current.run}`);
  if (current.rule !== null) parts.push(`rule=${current.rule}`);
  history.replaceState(null, "", "#" + parts.join("&"));
}

// ------------------------------------------------------------------ charts

function funnel(data) {
  const box = document.getElementById("funnel");
  const width = 460, row = 24, left = 90, total = Math.max(data.rules, 1);
  const chart = svg("svg", { width, height: row * (data.funnel.length + 1) + 10,
                             role: "img", "aria-label": "pass funnel" });
  const scale = (width - left - 110) / total;
  chart.appendChild(svg("text", { x: 0, y: 16 }, "generated"));
  chart.appendChild(svg("rect", { class: "bar", x: left, y: 4, height: row - 8,
                                  width: total * scale }));
  chart.appendChild(svg("text", { x: left + total * scale + 6, y: 16 }, `${data.rules}`));
  data.funnel.forEach((step, i) => {
    const y = row * (i + 1);
    chart.appendChild(svg("text", { x: 0, y: y + 16 }, step.hurdle));
    chart.appendChild(svg("rect", { class: "bar", x: left, y: y + 4, height: row - 8,
                                    width: Math.max(step.passed * scale, 0.5),
                                    "data-hurdle": step.hurdle, "data-count": step.passed }));
    const share = (100 * step.passed / total).toFixed(step.passed && step.passed < total / 100 ? 2 : 1);
    chart.appendChild(svg("text", { x: left + step.passed * scale + 6, y: y + 16 },
                          `${step.passed} (${share}%)`));
  });
  box.replaceChildren(chart);
}

function axes(chart, x0, y0, x1, y1, xmax, ymax, xlabel, yticks) {
  chart.appendChild(svg("line", { class: "axis", x1: x0, y1: y0, x2: x1, y2: y0 }));
  chart.appendChild(svg("line", { class: "axis", x1: x0, y1: y0, x2: x0, y2: y1 }));
  for (let k = 0; k <= 4; k++) {
    const x = x0 + (x1 - x0) * k / 4;
    chart.appendChild(svg("text", { x: x - 8, y: y0 + 14 }, fmt(xmax * k / 4, xmax < 1 ? 2 : xmax < 10 ? 1 : 0)));
  }
  chart.appendChild(svg("text", { x: (x0 + x1) / 2 - 40, y: y0 + 30 }, xlabel));
  for (const [value, label] of yticks) {
    const y = y0 - (y0 - y1) * value / ymax;
    chart.appendChild(svg("line", { class: "grid", x1: x0 + 1, y1: y, x2: x1, y2: y }));
    chart.appendChild(svg("text", { x: 2, y: y + 4 }, label));
  }
}

function best(data) {
  const box = document.getElementById("best");
  if (!data.best.length) { box.textContent = "no rules yet"; return; }
  const width = 460, height = 230, x0 = 120, y0 = 190, x1 = width - 24, y1 = 10;
  const span = Math.max(data.minutes, data.best[data.best.length - 1].minutes);
  // a run shorter than two minutes is measured in seconds
  const unit = span < 2 ? 60 : 1, xmax = Math.max(span * unit, 1e-3);
  const ymax = data.hurdles.length + 1;
  const chart = svg("svg", { width, height, role: "img", "aria-label": "best so far" });
  const ticks = [[0, "none"]].concat(data.hurdles.map((h, i) => [i + 1, `${i + 1}: ${h}`]));
  axes(chart, x0, y0, x1, y1, xmax, ymax,
       `${unit === 60 ? "seconds" : "minutes"} since the first rule`, ticks);
  const X = m => x0 + (x1 - x0) * m * unit / xmax, Y = v => y0 - (y0 - y1) * v / ymax;
  let d = "", last = null;
  for (const point of data.best) {
    d += last === null ? `M${X(point.minutes)},${Y(point.value)}`
                       : `H${X(point.minutes)}V${Y(point.value)}`;
    last = point;
  }
  d += `H${x1}`;
  chart.appendChild(svg("path", { class: "step", d }));
  for (const point of data.best) {
    const dot = svg("circle", { cx: X(point.minutes), cy: Y(point.value), r: 3, fill: "#c0392b" });
    dot.appendChild(svg("title", {}, `rule ${point.idx}: ${point.passed} hurdles, score ${fmt(point.score)}`));
    chart.appendChild(dot);
  }
  box.replaceChildren(chart);
}

function curves(list) {
  const box = document.getElementById("curves");
  const drawn = list.filter(c => c.accuracy && c.accuracy.length);
  if (!drawn.length) {
    box.replaceChildren(el("p", { class: "error" },
      list.length && list[0].failure ? list[0].failure : "no curves"));
    return;
  }
  const width = 460, height = 220, x0 = 40, y0 = 180, x1 = width - 10, y1 = 10;
  const xmax = Math.max(...drawn.map(c => c.accuracy.length + c.retained.length), 1);
  const chart = svg("svg", { width, height, role: "img", "aria-label": "learning curves" });
  axes(chart, x0, y0, x1, y1, xmax, 1, "epochs", [[0, "0"], [0.5, "0.5"], [1, "1"]]);
  const X = e => x0 + (x1 - x0) * e / xmax, Y = a => y0 - (y0 - y1) * a;
  const legend = el("div");
  drawn.forEach((c, i) => {
    const color = COLORS[i % COLORS.length];
    const line = (values, first) => values.map((a, k) =>
      `${k ? "L" : "M"}${X(first + k + 1)},${Y(a)}`).join("");
    chart.appendChild(svg("path", { class: "curve", stroke: color, d: line(c.accuracy, 0),
                                    "data-task": c.task, "data-seed": c.seed }));
    if (c.retained.length) {
      const joined = [c.accuracy[c.accuracy.length - 1]].concat(c.retained);
      chart.appendChild(svg("path", { class: "curve retained", stroke: color,
                                      d: line(joined, c.accuracy.length - 1) }));
    }
    const label = `${c.task} seed ${c.seed}` + (c.failure ? ` (${c.failure})` : "") +
      (c.goal_epoch ? `: goal at epoch ${c.goal_epoch}` : "");
    legend.appendChild(el("div", { style: `color:${color}` }, label));
  });
  box.replaceChildren(chart, legend);
}

// ------------------------------------------------------------------ panels

function hall(data) {
  const body = document.querySelector("#hall tbody");
  body.replaceChildren();
  if (!data.hall.length) {
    const row = el("tr");
    row.appendChild(el("td", { colspan: 6 }, "no rule passed screening yet"));
    body.appendChild(row);
  }
  for (const r of data.hall) {
    const row = el("tr", { class: "pick", "data-idx": r.idx });
    row.appendChild(el("td", {}, `${r.pareto ? "★ " : ""}${r.idx}`));
    row.appendChild(el("td", {}, `${r.passed}/${data.hurdles.length}`));
    row.appendChild(el("td", {}, fmt(r.score)));
    row.appendChild(el("td", {}, r.fresh === null ? "—" : `${r.fresh}/${data.run.fresh_seeds}`));
    row.appendChild(el("td", {}, `${r.size}`));
    row.appendChild(el("td", {}, r.parent === null ? (r.mutation || "drawn") : `${r.mutation} of ${r.parent}`));
    row.addEventListener("click", () => showRule(r.idx));
    body.appendChild(row);
  }
}

function summary(data) {
  const r = data.run;
  document.getElementById("summary").textContent =
    `run ${r.id}${r.name ? " (" + r.name + ")" : ""}: ${r.strategy}, seed ${r.seed}; ${r.tasks.join(", ")} on ${r.graphs.join(", ")} ` +
    `(${r.protocol}); ${data.rules} rules` +
    (data.rate === null ? "" : `, ${fmt(data.rate, 1)} rules/s`) +
    `; duplicates ${data.exact} exact, ${data.behaviour} behaviour`;
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

async function showRule(idx) {
  current.rule = idx;
  writeHash();
  const panel = document.getElementById("rule");
  panel.hidden = false;
  const rule = await getJSON(`api/rule?run=${current.run}&idx=${idx}`);
  document.getElementById("rule-title").textContent =
    `Rule ${rule.idx}` + (rule.duplicate ? ` (${rule.duplicate} duplicate of ${rule.duplicate_of})` : "");
  document.getElementById("rule-text").textContent = rule.text;
  document.getElementById("rule-status").textContent =
    `${rule.passed} hurdles passed, score ${fmt(rule.score)}, size ${rule.size}` +
    (rule.fresh === null ? "" : `, ${rule.fresh} untouched seeds learned`) +
    (rule.failure ? `; stopped: ${rule.failure}` : "");
  const lineage = document.getElementById("lineage");
  lineage.replaceChildren();
  if (!rule.lineage.length) lineage.appendChild(el("li", {}, rule.mutation || "drawn at random"));
  for (const a of rule.lineage) {
    const item = el("li");
    const link = el("a", { "data-idx": a.idx }, `rule ${a.idx}`);
    link.addEventListener("click", () => showRule(a.idx));
    item.append(link, ` (${a.mutation || "drawn"}; ${a.passed} hurdles, score ${fmt(a.score)})`);
    lineage.appendChild(item);
  }
  const body = document.querySelector("#results tbody");
  body.replaceChildren();
  for (const r of rule.results) {
    const row = el("tr");
    for (const v of [r.task, r.seed, fmt(r.accuracy), r.epochs, r.failure || ""]) {
      row.appendChild(el("td", {}, `${v}`));
    }
    body.appendChild(row);
  }
  document.getElementById("curves").textContent = "training…";
  curves(await getJSON(`api/curves?run=${current.run}&idx=${idx}`));
}

// -------------------------------------------------------------------- main

async function refresh() {
  try {
    const data = await getJSON(`api/run${current.run === null ? "" : "?run=" + current.run}`);
    current.run = data.run.id;
    summary(data);
    funnel(data);
    best(data);
    hall(data);
  } catch (error) {
    document.getElementById("summary").replaceChildren(el("span", { class: "error" }, error.message));
  }
}

async function start() {
  readHash();
  const select = document.getElementById("run-select");
  try {
    const runs = await getJSON("api/runs");
    for (const r of runs) {
      select.appendChild(el("option", { value: r.id }, `${r.id}: ${r.name || r.tasks.join(",")}`));
    }
    if (current.run === null && runs.length) current.run = runs[runs.length - 1].id;
    select.value = current.run;
  } catch (error) {
    document.getElementById("summary").replaceChildren(el("span", { class: "error" }, error.message));
  }
  select.addEventListener("change", () => {
    current.run = Number(select.value);
    current.rule = null;
    document.getElementById("rule").hidden = true;
    writeHash();
    refresh();
  });
  await refresh();
  writeHash();
  if (current.rule !== null) await showRule(current.rule);
  document.body.setAttribute("data-ready", "1");
  setInterval(refresh, POLL_MS);
}

start();
