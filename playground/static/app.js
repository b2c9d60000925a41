// novarec playground: plain JavaScript over the public API (/openapi.json).
// Everything the page shows comes from four routes: POST /v1/recommend,
// POST /v1/feedback, GET /v1/users/{id}/intent and GET /v1/policy; the A/B
// view reads the admin routes of the running experiment.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

// el builds an element; text goes in as text, never as HTML.
function el(tag, attrs, ...children) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.setAttribute("class", v);
    else if (k === "style") e.style.cssText = v; // CSSOM: a style attribute would break the page's CSP
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// width sizes a chart's viewBox to its on-screen width, so that its text
// keeps the page's size instead of scaling with the chart.
function width(svg, h, fallback) {
  const w = Math.round(svg.getBoundingClientRect().width) || fallback;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  return w;
}

const fmt = (x, d = 3) => (typeof x === "number" && isFinite(x) ? x.toFixed(d) : "–");
const sig = (x) => (typeof x === "number" && isFinite(x) ? Number(x.toPrecision(4)).toString() : "–");
const pct = (x) => (typeof x === "number" && isFinite(x) ? (x >= 0 ? "+" : "") + (100 * x).toFixed(1) + "%" : "");
const rand = () => Math.random().toString(36).slice(2, 7);

// ---- API ----------------------------------------------------------------

class APIError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || "HTTP " + status);
    this.status = status;
    this.code = e.code || "";
    this.field = e.field || "";
  }
}

// api calls one route. A read that meets 503 (the store missed its 100 ms
// budget, or the service sheds load) is retried twice: reads are safe to
// repeat, writes are left to the user.
async function api(method, path, body) {
  const headers = {};
  const key = $("key").value.trim();
  if (key) headers["Authorization"] = "Bearer " + key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  for (let attempt = 1; ; attempt++) {
    const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await resp.json(); } catch (_) { /* not JSON */ }
    if (resp.ok) return data;
    if (method !== "GET" || resp.status !== 503 || attempt === 3) throw new APIError(resp.status, data);
    await new Promise((r) => setTimeout(r, 200 * attempt));
  }
}

// keyHint says what to do about a refused key: the server has API keys
// (docs/security.md) and the page needs one for the routes it calls.
const keyHint = " Type an API key above with the recommend, feedback and intent:read scopes (catalog to show the items' categories, admin for the A/B report).";

function showError(err) {
  const box = $("error");
  if (!err) { box.hidden = true; return; }
  box.textContent = err instanceof APIError
    ? `${err.status} ${err.code}: ${err.message}` + (err.field ? ` (field ${err.field})` : "") +
      (err.status === 401 || err.status === 403 ? keyHint : "")
    : String(err.message || err);
  box.hidden = false;
}

// ---- the intent view ----------------------------------------------------

const S = {
  rec: null,         // the last recommend response
  details: {},       // item id -> catalog item (categories)
  detailsDenied: null, // the key item reads were refused with (no catalog scope)
  acted: {},         // item id -> "click" | "skip" for the current slate
  intent: null,      // the last GET /v1/users/{id}/intent
  decision: null,    // the intent as it was when the slate was built
  policy: {},        // "variant/k" -> GET /v1/policy
  trace: [],         // per step: {label, user, session, level, k}
  seen: 0,           // feedback events of this user the store has applied (clicks + skips)
  sent: 0,           // feedback events this page sent for this user
  busy: false,
};

const user = () => $("user").value.trim();
const session = () => $("session").value.trim();
const slateK = () => Math.min(20, Math.max(1, parseInt($("k").value, 10) || 8));

function log(msg) {
  const li = el("li", {}, new Date().toLocaleTimeString() + " " + msg);
  $("log").prepend(li);
  while ($("log").children.length > 60) $("log").lastChild.remove();
}

function resetUser() {
  S.rec = null; S.acted = {}; S.trace = []; S.intent = null; S.decision = null; S.sent = 0; S.seen = 0;
  $("slate").replaceChildren();
  $("slatemeta").textContent = "";
  drawTrace();
}

async function nextSlate() {
  if (S.busy || !user()) return;
  S.busy = true;
  showError(null);
  try {
    const body = { user_id: user(), k: slateK() };
    if (session()) body.session_id = session();
    const rec = await api("POST", "/v1/recommend", body);
    S.rec = rec; S.acted = {};
    renderSlate();
    log(`slate at level ${rec.intent.level} (p=${fmt(rec.intent.probability, 2)}), ${rec.items.filter((i) => i.novel).length} novel`);
    await Promise.all([loadDetails(rec.items.map((i) => i.item_id)), loadPolicy(rec.variant, rec.items.length || slateK())]);
    renderSlate();
    const it = await loadIntent();
    S.decision = it;
    S.seen = it.stats.clicks + it.stats.skips;
    S.sent = 0;
    S.trace.push({ label: "slate", user: it.user_propensity, session: it.session_propensity, level: rec.intent.level, k: it.probabilities.length });
    renderIntent();
    renderWhy();
  } catch (err) {
    showError(err);
  } finally {
    S.busy = false;
  }
}

// loadDetails reads the items' categories. Item reads are in the catalog
// scope: with a key without it they are refused, the categories stay
// unknown ("…"), and the page stops asking until the key changes. The
// first read goes alone so that a refusal is met once, not once per item.
async function loadDetails(ids) {
  const key = $("key").value.trim();
  const one = async (id) => {
    if (S.detailsDenied === key) return;
    try {
      S.details[id] = await api("GET", "/v1/items/" + encodeURIComponent(id));
    } catch (err) {
      if (err.status === 401 || err.status === 403) S.detailsDenied = key;
    }
  };
  const todo = ids.filter((id) => !S.details[id]);
  if (todo.length > 0) await one(todo[0]);
  await Promise.all(todo.slice(1).map(one));
}

async function loadPolicy(variant, k) {
  const key = variant + "/" + k;
  if (!S.policy[key]) S.policy[key] = await api("GET", `/v1/policy?variant=${encodeURIComponent(variant)}&k=${k}`);
  return S.policy[key];
}

async function loadIntent() {
  let path = "/v1/users/" + encodeURIComponent(user()) + "/intent";
  if (session()) path += "?session_id=" + encodeURIComponent(session());
  S.intent = await api("GET", path);
  return S.intent;
}

// feedback sends one event and waits until the feature updater has applied
// it (the user's counters move), so the intent shown is the one it caused.
async function feedback(item, type) {
  if (!S.rec || S.acted[item.item_id]) return;
  showError(null);
  const body = { request_id: S.rec.request_id, user_id: user(), item_id: item.item_id, type };
  if (session()) body.session_id = session();
  try {
    await api("POST", "/v1/feedback", body);
  } catch (err) { showError(err); return; }
  S.acted[item.item_id] = type;
  S.sent++;
  renderSlate();
  log(`${type} ${item.item_id}${item.novel ? " (novel)" : ""}`);
  // Usually well under a second; the first event after a start waits for
  // the feature updater's consumer group to form, so allow 30 s.
  const want = S.seen + S.sent, deadline = Date.now() + 30000;
  let it = null;
  for (let wait = 50; ; wait = Math.min(2 * wait, 500)) {
    try { it = await loadIntent(); } catch (err) { showError(err); return; }
    if (it.stats.clicks + it.stats.skips >= want || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, wait));
  }
  if (it.stats.clicks + it.stats.skips < want) log("the feature updater has not applied it yet; the intent shown may lag");
  S.trace.push({ label: type, user: it.user_propensity, session: it.session_propensity, level: null, k: it.probabilities.length });
  renderIntent();
}

async function skipRest() {
  if (!S.rec) return nextSlate();
  for (const item of S.rec.items) {
    if (!S.acted[item.item_id]) await feedback(item, "skip");
  }
  await nextSlate();
}

function renderSlate() {
  const rec = S.rec;
  if (!rec) return;
  const novel = rec.items.filter((i) => i.novel).length;
  $("slatemeta").textContent = `${rec.items.length} items, ${novel} novel · variant ${rec.variant} · model ${rec.model_version}` +
    (rec.degraded ? " · DEGRADED (popular pool)" : "");
  $("slate").replaceChildren(...rec.items.map((item) => {
    const d = S.details[item.item_id];
    const acted = S.acted[item.item_id];
    return el("li", { class: "item" + (item.novel ? " novel" : "") + (acted === "click" ? " clicked" : "") + (acted === "skip" ? " skipped" : ""), "data-item": item.item_id, "data-novel": item.novel },
      el("span", { class: "pos" }, item.position + 1),
      el("div", {},
        el("span", { class: "id" }, item.item_id),
        item.novel ? el("span", { class: "badge novel" }, "novel") : el("span", { class: "badge" }, "familiar"),
        el("div", { class: "cats" }, d ? d.categories.join(" · ") : "…"),
        el("div", { class: "nums" }, `score ${fmt(item.score)} · propensity ${fmt(item.propensity)}`)),
      el("div", { class: "actions" },
        el("button", { type: "button", class: "click", disabled: acted ? "" : null, onclick: () => feedback(item, "click") }, "Click"),
        el("button", { type: "button", class: "skip", disabled: acted ? "" : null, onclick: () => feedback(item, "skip") }, "Skip")));
  }));
}

function renderIntent() {
  const it = S.intent;
  if (!it) return;
  $("up").textContent = fmt(it.user_propensity);
  $("sp").textContent = fmt(it.session_propensity);
  $("up-bar").style.width = (100 * it.user_propensity).toFixed(1) + "%";
  $("sp-bar").style.width = (100 * it.session_propensity).toFixed(1) + "%";
  $("level").textContent = S.rec ? String(S.rec.intent.level) : "–";
  $("levelp").textContent = S.rec ? `(p=${fmt(S.rec.intent.probability, 2)})` : "";
  $("argmax").textContent = String(it.level);
  $("intentmeta").textContent = `${it.stats.clicks} clicks (${it.stats.novel_clicks} novel), ${it.stats.skips} skips, history ${it.history_length}`;
  drawDist(it.probabilities, S.rec ? S.rec.intent.level : -1);
  drawTrace();
  $("state").replaceChildren(...Object.keys(it.state).map((name) => el("tr", {}, el("td", {}, name), el("td", {}, fmt(it.state[name])))));
}

function drawDist(probs, chosen) {
  const svg = $("dist");
  const h = 130, w = width(svg, h, 300), pad = 18, bw = (w - 2 * pad) / probs.length;
  const parts = [el("svg:line", { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, class: "axis" })];
  probs.forEach((p, z) => {
    const bh = (h - 2 * pad - 8) * p;
    const x = pad + z * bw + 4;
    parts.push(el("svg:rect", { x, y: h - pad - bh, width: bw - 8, height: bh, rx: 3, fill: z === chosen ? "#3556d8" : "#a5b4fc", "data-level": z }));
    parts.push(el("svg:text", { x: x + (bw - 8) / 2, y: h - pad - bh - 3, "text-anchor": "middle" }, p.toFixed(2)));
    parts.push(el("svg:text", { x: x + (bw - 8) / 2, y: h - 4, "text-anchor": "middle" }, "level " + z));
  });
  svg.replaceChildren(...parts);
}

function drawTrace() {
  const svg = $("trace");
  const h = 130, w = width(svg, h, 300), pad = 14, t = S.trace;
  const x = (i) => pad + (t.length < 2 ? 0 : (i * (w - 2 * pad)) / (t.length - 1));
  const y = (v) => h - pad - v * (h - 2 * pad);
  const parts = [
    el("svg:line", { x1: pad, y1: y(0), x2: w - pad, y2: y(0), class: "axis" }),
    el("svg:line", { x1: pad, y1: y(1), x2: w - pad, y2: y(1), class: "axis", "stroke-dasharray": "2 3" }),
    el("svg:text", { x: 0, y: y(1) + 3 }, "1"), el("svg:text", { x: 0, y: y(0) + 3 }, "0"),
  ];
  for (const [key, color] of [["session", "#d9480f"], ["user", "#2b8a3e"]]) {
    if (t.length) parts.push(el("svg:polyline", { points: t.map((s, i) => `${x(i)},${y(s[key])}`).join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
  }
  t.forEach((s, i) => {
    if (s.level !== null) parts.push(el("svg:circle", { cx: x(i), cy: y(s.level / Math.max(1, s.k - 1)), r: 3.5, fill: "#3556d8" }));
  });
  svg.replaceChildren(...parts);
}

function renderWhy() {
  const rec = S.rec, it = S.decision;
  const pol = rec && S.policy[rec.variant + "/" + (rec.items.length || slateK())];
  if (!rec || !it || !pol) return;
  const z = rec.intent.level, lv = pol.levels[z];
  const cold = it.history_length === 0;
  const pools = cold ? pol.cold_pools : lv.pools;
  const total = pools.familiar + pools.novel + pools.popular;
  const novel = rec.items.filter((i) => i.novel).length;
  // The target novelty t(s) = Σ w·s + b: its largest terms say what drove the level.
  const terms = Object.keys(pol.target.weights)
    .map((name) => ({ name, v: pol.target.weights[name] * (it.state[name] || 0) }))
    .filter((x) => x.v !== 0).sort((a, b) => Math.abs(b.v) - Math.abs(a.v));
  const tgt = terms.reduce((s, x) => s + x.v, pol.target.bias);
  const bar = (cls, n, label) => (n > 0 ? el("span", { class: cls, style: `width:${(100 * n) / total}%` }, `${label} ${n}`) : null);
  $("whybody").replaceChildren(el("dl", { class: "why" },
    el("dt", {}, "level"),
    el("dd", {}, `${z} of 0–${pol.levels.length - 1}, sampled with probability ${fmt(rec.intent.probability, 2)} from the distribution above (model ${pol.model_version})`),
    el("dt", {}, "the high level's aim"),
    el("dd", {}, `target novelty t(s) = ${fmt(tgt, 2)} on the levels' scale 0–1: `,
      terms.slice(0, 3).map((x) => `${x.name} ${x.v >= 0 ? "+" : ""}${fmt(x.v, 2)}`).join(", "), `, bias ${fmt(pol.target.bias, 2)}`),
    el("dt", {}, "knobs of level " + z),
    el("dd", {}, `novelty weight β = ${lv.beta}, redundancy penalty λ = ${lv.lambda}, novel share of candidates ${lv.novel_share} ` +
      `(with hedging, recsvc's default, the novel share of candidates and of the slate's seats is the session belief's instead, ` +
      `${fmt(it.state.session_novel_preference || 0, 2)}, and β is not applied: the seats carry the novelty)`),
    el("dt", {}, `the level's candidate pools (${total})` + (cold ? " — a cold user: no history yet, so popular items only" : "")),
    el("dd", {}, el("div", { class: "pools" }, bar("familiar", pools.familiar, "familiar"), bar("novel", pools.novel, "novel"), bar("popular", pools.popular, "popular"))),
    el("dt", {}, "the slate"),
    el("dd", {}, `${novel} of ${rec.items.length} novel to this user (none of their categories in the history); ` +
      `built position by position from softmax(score/τ) with the λ·max-cosine penalty, so each item's propensity is logged`)));
}

// ---- the A/B view -------------------------------------------------------

const AB = { report: null, timer: null };

function abMessage(text) {
  $("ab-message").replaceChildren(...text);
  $("ab-message").hidden = false;
  $("ab-body").hidden = true;
}

async function loadReport() {
  let exp;
  try {
    exp = await api("GET", "/v1/admin/experiments");
  } catch (err) {
    if (err.code === "admin_disabled") {
      abMessage([el("p", {}, "The A/B report is an admin route, and admin routes are off. Start recsvc with an admin token and an experiment:"),
        el("pre", {}, "NOVAREC_ADMIN_TOKEN=demo go run ./cmd/recsvc -experiments examples/experiments.yaml"),
        el("p", {}, "then type the token (demo) as the API key above.")]);
    } else if (err.status === 401) {
      abMessage([el("p", {}, "Type an API key with the admin scope (or the NOVAREC_ADMIN_TOKEN) above to read the report.")]);
    } else if (err.code === "forbidden") {
      abMessage([el("p", {}, "The API key above lacks the admin scope the report needs (docs/security.md).")]);
    } else if (err.code === "no_experiments") {
      abMessage([el("p", {}, "No experiment is running. Start recsvc with one:"),
        el("pre", {}, "NOVAREC_ADMIN_TOKEN=demo go run ./cmd/recsvc -experiments examples/experiments.yaml")]);
    } else {
      showError(err);
    }
    return;
  }
  try {
    AB.report = await api("GET", `/v1/experiments/${encodeURIComponent(exp.name)}/report`);
  } catch (err) { showError(err); return; }
  $("ab-meta").textContent = "updated " + new Date().toLocaleTimeString() + " · " +
    exp.variants.map((v) => `${v.name}: w_nov ${v.reward.w_nov}, w_div ${v.reward.w_div}, share ${v.share}`).join(" · ");
  renderReport();
}

function renderReport() {
  const r = AB.report;
  if (!r) return;
  $("ab-message").hidden = true;
  $("ab-body").hidden = false;
  const names = r.variants.length ? r.variants[0].metrics.map((m) => m.name) : [];
  const sel = $("ab-metric");
  const chosen = sel.value || "ctr";
  if (sel.options.length !== names.length) {
    sel.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  }
  sel.value = names.includes(chosen) ? chosen : names[0] || "";
  $("ab-title").textContent = `experiment ${r.experiment} · control ${r.control} · ${sel.value} with 95% intervals`;
  drawReportChart(r, sel.value);
  const srm = r.srm;
  $("ab-srm").replaceChildren(`sample ratio check: chi-square ${fmt(srm.chi_square, 2)}, p ${sig(srm.p_value)} `,
    srm.mismatch ? el("span", { class: "badge warn" }, "mismatch: do not trust the lifts") : el("span", { class: "badge" }, "ok"));
  $("ab-notes").replaceChildren(...(r.notes || []).map((n) => el("li", {}, n)));
  const head = el("tr", {}, ...["variant", "metric", "value", "95% interval", "lift", "p", "p adj."].map((h) => el("th", {}, h)));
  const rows = [];
  for (const v of r.variants) {
    v.metrics.forEach((m, i) => {
      const p = m.p_adjusted !== undefined ? m.p_adjusted : m.p_value;
      rows.push(el("tr", { class: i === 0 ? "first" : "", "data-variant": v.name, "data-metric": m.name },
        el("td", {}, i === 0 ? v.name + (v.control && v.name !== "control" ? " (control)" : "") : ""),
        el("td", {}, m.name),
        el("td", {}, sig(m.value)),
        el("td", {}, `[${sig(m.ci_low)}, ${sig(m.ci_high)}]`),
        el("td", {}, m.lift !== undefined ? pct(m.lift) : ""),
        el("td", { class: p !== undefined && p < 0.05 ? "sig" : "" }, m.p_value !== undefined ? sig(m.p_value) : ""),
        el("td", {}, m.p_adjusted !== undefined ? sig(m.p_adjusted) : "")));
    });
  }
  $("ab-table").replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
}

// drawReportChart draws one metric per variant: the value with its 95%
// interval as a whisker, and the control's value as a dashed reference.
function drawReportChart(r, name) {
  const svg = $("ab-chart");
  const h = 40 + 36 * r.variants.length, w = width(svg, h, 600), left = 110, right = 30, row = (h - 30) / Math.max(1, r.variants.length);
  const ms = r.variants.map((v) => v.metrics.find((m) => m.name === name)).filter(Boolean);
  if (!ms.length) { svg.replaceChildren(); return; }
  let lo = Math.min(...ms.map((m) => m.ci_low)), hi = Math.max(...ms.map((m) => m.ci_high));
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  const span = hi - lo; lo -= 0.05 * span; hi += 0.05 * span;
  const x = (v) => left + ((v - lo) / (hi - lo)) * (w - left - right);
  const parts = [el("svg:line", { x1: left, y1: h - 20, x2: w - right, y2: h - 20, class: "axis" })];
  for (let i = 0; i <= 4; i++) {
    const v = lo + (i * (hi - lo)) / 4;
    parts.push(el("svg:text", { x: x(v), y: h - 6, "text-anchor": "middle" }, sig(v)));
  }
  const ctrl = r.variants.find((v) => v.control);
  const cm = ctrl && ctrl.metrics.find((m) => m.name === name);
  if (cm) parts.push(el("svg:line", { x1: x(cm.value), y1: 4, x2: x(cm.value), y2: h - 20, stroke: "#adb5bd", "stroke-dasharray": "3 3" }));
  r.variants.forEach((v, i) => {
    const m = v.metrics.find((mm) => mm.name === name);
    if (!m) return;
    const cy = 10 + row * i + row / 2;
    const color = v.control ? "#495057" : "#3556d8";
    parts.push(el("svg:text", { x: left - 8, y: cy + 3, "text-anchor": "end", style: "font-size:12px" }, v.name));
    parts.push(el("svg:line", { x1: x(m.ci_low), y1: cy, x2: x(m.ci_high), y2: cy, stroke: color, "stroke-width": 2 }));
    for (const e of [m.ci_low, m.ci_high]) parts.push(el("svg:line", { x1: x(e), y1: cy - 5, x2: x(e), y2: cy + 5, stroke: color, "stroke-width": 2 }));
    parts.push(el("svg:circle", { cx: x(m.value), cy, r: 5, fill: color, "data-variant": v.name }));
  });
  svg.replaceChildren(...parts);
}

// sendTraffic: a few users ask for a slate and click one item each, so a
// fresh experiment's report has something to show.
async function sendTraffic() {
  const btn = $("ab-traffic");
  btn.disabled = true;
  showError(null);
  try {
    for (let i = 0; i < 20; i++) {
      const u = "pg-" + rand();
      const rec = await api("POST", "/v1/recommend", { user_id: u, session_id: "s1", k: 5 });
      if (!rec.items.length) continue;
      const item = rec.items[Math.floor(Math.random() * rec.items.length)];
      await api("POST", "/v1/feedback", { request_id: rec.request_id, user_id: u, session_id: "s1", item_id: item.item_id, type: "click" });
    }
    $("ab-meta").textContent = "sent 20 slates and 20 clicks; the trainers fold them into the report within a few seconds";
  } catch (err) {
    showError(err);
  } finally {
    btn.disabled = false;
  }
}

// ---- wiring ---------------------------------------------------------------

function showView(name) {
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.dataset.view === name);
  $("view-play").hidden = name !== "play";
  $("view-ab").hidden = name !== "ab";
  if (name === "ab") loadReport();
  history.replaceState(null, "", name === "ab" ? "#ab" : "#");
}

function init() {
  $("key").value = sessionStorage.getItem("novarec-key") || "";
  $("key").addEventListener("change", () => sessionStorage.setItem("novarec-key", $("key").value.trim()));
  const params = new URLSearchParams(location.search);
  $("user").value = params.get("user") || "guest-" + rand();
  $("session").value = params.get("session") || "s-" + rand();
  for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => showView(t.dataset.view));
  $("who").addEventListener("submit", (e) => { e.preventDefault(); nextSlate(); });
  $("skiprest").addEventListener("click", skipRest);
  $("newsession").addEventListener("click", () => { $("session").value = "s-" + rand(); resetUser(); nextSlate(); });
  $("newuser").addEventListener("click", () => { $("user").value = "guest-" + rand(); resetUser(); nextSlate(); });
  $("user").addEventListener("change", () => { resetUser(); nextSlate(); });
  $("ab-refresh").addEventListener("click", loadReport);
  $("ab-metric").addEventListener("change", renderReport);
  $("ab-traffic").addEventListener("click", sendTraffic);
  $("ab-auto").addEventListener("change", () => {
    clearInterval(AB.timer);
    if ($("ab-auto").checked) AB.timer = setInterval(() => { if (!$("view-ab").hidden) loadReport(); }, 5000);
  });
  drawTrace();
  if (location.hash === "#ab") showView("ab");
  nextSlate();
}

document.addEventListener("DOMContentLoaded", init);
