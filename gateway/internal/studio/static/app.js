// hirez studio: asks the gateway's HTTP/JSON API for images and shows each
// as it streams in. Plain JavaScript, no framework, nothing loaded from
// elsewhere (the page's Content-Security-Policy allows only this origin).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("form");
  const gallery = $("gallery");
  const statusLine = $("status");
  const fields = ["count", "model", "version", "label", "seed"];
  const firstSetCount = 8;

  let running = null; // AbortController of the request in flight
  let served = null; // {name, version, labels} from GET /v1/labels
  let retryTimer = null;

  // ---- API -----------------------------------------------------------

  // apiError is what the page knows of a failed call: the gRPC code name
  // the gateway sent, its message, and for RESOURCE_EXHAUSTED the
  // Retry-After seconds.
  class APIError extends Error {
    constructor(code, message, httpStatus, retryAfter) {
      super(message);
      this.code = code;
      this.httpStatus = httpStatus;
      this.retryAfter = retryAfter;
    }
  }

  // errorFrom reads a non-2xx response: the gateway's {"error": {code,
  // message}} body, or whatever a proxy in front of it sent.
  async function errorFrom(res) {
    const retry = parseInt(res.headers.get("Retry-After") || "", 10);
    const text = await res.text();
    try {
      const e = JSON.parse(text).error;
      if (e && e.code) return new APIError(e.code, e.message || "", res.status, retry);
    } catch (_) { /* not the gateway's JSON */ }
    const code = { 400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED" }[res.status] || "HTTP_" + res.status;
    return new APIError(code, (text.trim().slice(0, 300) || res.statusText), res.status, retry);
  }

  function modelQuery(name, version) {
    const q = new URLSearchParams();
    if (name) q.set("generator.name", name);
    if (version) q.set("generator.version", version);
    const s = q.toString();
    return s ? "?" + s : "";
  }

  async function fetchLabels(name, version) {
    let res;
    try {
      res = await fetch("v1/labels" + modelQuery(name, version), { headers: { Accept: "application/json" } });
    } catch (e) {
      throw new APIError("NETWORK", String(e.message || e), 0);
    }
    if (!res.ok) throw await errorFrom(res);
    return res.json();
  }

  // generate POSTs the request and calls onImage for every final image's
  // NDJSON line as it arrives, onPreview for every preview line ({"preview":
  // …}, which comes before its image's final). A line {"error": …} after
  // images is the stream's end with an error: it is thrown with midStream
  // set (the number of final images that came).
  async function generate(req, signal, onImage, onPreview) {
    let res;
    try {
      res = await fetch("v1/images:generate", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/x-ndjson" },
        body: JSON.stringify(req),
        signal,
      });
    } catch (e) {
      if (signal.aborted) throw new APIError("CANCELLED", "stopped", 0);
      throw new APIError("NETWORK", String(e.message || e), 0);
    }
    if (!res.ok) throw await errorFrom(res);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    let got = 0;
    const line = (text) => {
      if (!text.trim()) return;
      const msg = JSON.parse(text);
      if (msg.error) {
        const err = new APIError(msg.error.code, msg.error.message || "", res.status);
        err.midStream = got;
        throw err;
      }
      if (msg.preview) {
        onPreview(msg.preview);
        return;
      }
      got++;
      onImage(msg);
    };
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (signal.aborted) throw Object.assign(new APIError("CANCELLED", "stopped", 0), { midStream: got });
        throw Object.assign(new APIError("NETWORK", "the connection broke: " + (e.message || e), 0), { midStream: got });
      }
      if (chunk.done) break;
      buf += decoder.decode(chunk.value, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        line(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    }
    line(buf + decoder.decode());
    return got;
  }

  // ---- Messages a person can act on ----------------------------------

  // explain turns an API error into a title and advice. The gateway's own
  // message is always shown too, under them.
  function explain(err, req) {
    const servedName = served && served.name ? "“" + served.name + "”" : "the served model";
    switch (err.code) {
      case "INVALID_ARGUMENT":
        if (err.local) return { title: "Check the form: nothing was sent.", advice: "Correct the field the message names and generate again." };
        return { title: "The gateway refused the request as given.", advice: "Correct the field the message names and generate again." };
      case "NOT_FOUND":
        return { title: "That model or version is not served here.", advice: "Leave Model and Version empty to use " + servedName + ", or enter a name and version this gateway serves." };
      case "RESOURCE_EXHAUSTED":
        if (err.httpStatus === 413) return { title: "The request is too large.", advice: "Ask for fewer images." };
        return {
          title: "The gateway is busy with other requests.",
          advice: err.retryAfter > 0 ? "Nothing was made. Try again in " + err.retryAfter + " s — the button below does it for you." : "Nothing was made. Wait a few seconds and try again, or ask for fewer images.",
          retry: err.retryAfter > 0 ? err.retryAfter : 0,
        };
      case "DEADLINE_EXCEEDED":
        return { title: "The images did not come in time.", advice: "Ask for fewer images (now " + req.count + "), or try again when the gateway is less busy." };
      case "UNAVAILABLE":
        return { title: "The gateway cannot reach its image services right now.", advice: "They may be starting or restarting: try again in a minute. If it lasts, tell the operator (the gateway's /readyz says whether it is ready).", retry: 0 };
      case "FAILED_PRECONDITION":
        return { title: "This gateway is not set up for that request.", advice: "Use the default pipeline, or ask the operator to start the pool the message names." };
      case "CANCELLED":
        return { title: "Stopped.", advice: "The images already made are kept; generate again for the rest." };
      case "NETWORK":
        return { title: "The gateway did not answer.", advice: "Check that it is running and that this page's address is the gateway's HTTP port, then reload." };
      default:
        return { title: "The gateway failed to make the images.", advice: "Try again; if it happens again, send the operator the message below." };
    }
  }

  function showError(err, req) {
    const box = $("error");
    const e = explain(err, req);
    let title = e.title;
    if (err.midStream !== undefined) {
      title = err.midStream + " of " + req.count + " images arrived, then the stream stopped. " + title;
    }
    $("error-title").textContent = title;
    $("error-advice").textContent = e.advice;
    $("error-code").textContent = err.code;
    $("error-message").textContent = err.message;
    box.dataset.code = err.code;
    box.hidden = false;
    markField(err);
    const retry = $("retry");
    clearInterval(retryTimer);
    if (e.retry === undefined) {
      retry.hidden = true;
      return;
    }
    retry.hidden = false;
    let left = e.retry;
    const tick = () => {
      retry.disabled = left > 0;
      retry.textContent = left > 0 ? "Try again in " + left + " s" : "Try again";
      if (left-- <= 0) clearInterval(retryTimer);
    };
    tick();
    retryTimer = setInterval(tick, 1000);
  }

  function clearError() {
    clearInterval(retryTimer);
    $("error").hidden = true;
    for (const f of fields) $(f).removeAttribute("aria-invalid");
  }

  // markField flags the input an INVALID_ARGUMENT or NOT_FOUND message is
  // about, so a person sees where to look.
  function markField(err) {
    if (err.code !== "INVALID_ARGUMENT" && err.code !== "NOT_FOUND") return;
    const m = err.message.toLowerCase();
    const field = /label/.test(m) ? "label" : /version/.test(m) ? "version" : /model|generator|name/.test(m) ? "model" : /count|images/.test(m) ? "count" : /seed/.test(m) ? "seed" : null;
    if (field) $(field).setAttribute("aria-invalid", "true");
  }

  // ---- Cards ---------------------------------------------------------

  function short(digest) {
    return digest ? digest.replace(/^sha256:/, "").slice(0, 12) : "";
  }

  function seconds(d) {
    return d ? parseFloat(String(d).replace(/s$/, "")) : 0; // protobuf Duration JSON: "0.012s"
  }

  function ref(m) {
    return m ? (m.name || "?") + "@" + short(m.version) : "";
  }

  function bytesOf(b64) {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function placeholders(n) {
    for (const img of gallery.querySelectorAll("img")) URL.revokeObjectURL(img.src);
    gallery.textContent = "";
    const tpl = $("card");
    for (let i = 0; i < n; i++) {
      const li = tpl.content.firstElementChild.cloneNode(true);
      li.querySelector(".idx").textContent = "#" + i;
      gallery.appendChild(li);
    }
  }

  function addKV(dl, k, v, title) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    if (title) dd.title = title;
    dd.dataset.key = k;
    dl.append(dt, dd);
  }

  // showPreview puts an intermediate image (the generator's output or an
  // upscale pass's) in its card until the final comes: drawn with hard
  // pixel edges (CSS image-rendering) and tagged with its side, so nobody
  // takes it for the finished image. The sides shown are kept in
  // data-previews, in order.
  function showPreview(pv) {
    const index = pv.index || 0;
    const li = gallery.children[index];
    if (!li || li.dataset.state === "done") return; // a final is never replaced
    const side = pv.side || 0;
    const url = URL.createObjectURL(new Blob([bytesOf(pv.png || "")], { type: "image/png" }));
    const frame = li.querySelector(".frame");
    const old = frame.querySelector("img");
    if (old) URL.revokeObjectURL(old.src);
    const img = document.createElement("img");
    img.src = url;
    img.className = "preview";
    img.width = side;
    img.height = side;
    img.alt = "preview of image " + index + " at " + side + "×" + side;
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = "preview " + side + "²";
    frame.textContent = "";
    frame.append(img, tag);
    li.dataset.state = "preview";
    li.dataset.previews = (li.dataset.previews ? li.dataset.previews + "," : "") + side;
    if (pv.seed) li.querySelector(".seed").textContent = "seed " + pv.seed;
  }

  function fill(msg) {
    const index = msg.index || 0;
    const li = gallery.children[index];
    if (!li) return;
    const old = li.querySelector(".frame img.preview");
    if (old) URL.revokeObjectURL(old.src);
    const p = msg.provenance || {};
    const png = bytesOf(msg.png || "");
    const url = URL.createObjectURL(new Blob([png], { type: "image/png" }));
    const seed = msg.seed || p.seed || "0";

    const img = document.createElement("img");
    img.src = url;
    img.width = msg.width || 256;
    img.height = msg.height || 256;
    img.alt = "image " + index + ", seed " + seed;
    const frame = li.querySelector(".frame");
    frame.textContent = "";
    frame.appendChild(img);

    li.querySelector(".seed").textContent = "seed " + seed;
    const ups = p.upscalers || [];
    // Names only: the digests are in the provenance below.
    let model = p.generator ? p.generator.name : "";
    if (ups.length) model += " → " + ups[0].name + (ups.length > 1 ? " ×" + ups.length : "");
    const total = (p.timings || []).reduce((s, t) => s + seconds(t.duration), 0);
    li.querySelector(".model").textContent = model + (total ? " · " + Math.round(total * 1000) + " ms" : "");

    const dl = li.querySelector(".kv");
    addKV(dl, "seed", seed);
    addKV(dl, "size", (msg.width || 0) + "×" + (msg.height || 0));
    addKV(dl, "pipeline", (p.pipeline || "").replace(/^PIPELINE_/, ""));
    if (p.label) addKV(dl, "label", p.label);
    addKV(dl, "latent", p.fromLatent ? "given by the caller" : (p.latentDim || "?") + " dims from the seed");
    if (p.generator) addKV(dl, "generator", ref(p.generator), p.generator.version);
    ups.forEach((u, i) => addKV(dl, "upscaler " + (i + 1), ref(u), u.version));
    const body = li.querySelector(".timings tbody");
    for (const t of p.timings || []) {
      const tr = document.createElement("tr");
      for (const v of [t.stage, (seconds(t.duration) * 1000).toFixed(1), t.batchSize || 1, t.backend || "—"]) {
        const td = document.createElement("td");
        td.textContent = v;
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }

    const a = li.querySelector(".download");
    a.href = url;
    a.download = "hirez-" + seed + ".png";
    a.hidden = false;
    li.dataset.state = "done";
    li.dataset.seed = seed;
    li.dataset.generator = p.generator ? p.generator.name + "@" + p.generator.version : "";
  }

  // ---- The form ------------------------------------------------------

  function request() {
    const req = { count: parseInt($("count").value, 10), previews: true };
    const name = $("model").value.trim();
    const version = $("version").value.trim();
    if (name || version) req.generator = { name, version };
    const label = $("label").value;
    if (!$("label-row").hidden && label) req.label = label;
    const seed = $("seed").value.trim();
    if (seed) req.seed = seed; // int64 as a JSON string: a Number would lose digits
    return req;
  }

  // checkLocally catches what the page can say better than a round trip;
  // the gateway checks everything again.
  function checkLocally(req) {
    const bad = (msg) => Object.assign(new APIError("INVALID_ARGUMENT", msg, 0), { local: true });
    if (!Number.isInteger(req.count) || req.count < 1 || req.count > 256) {
      return bad("count must be a whole number from 1 to 256, got “" + $("count").value + "”");
    }
    if (req.seed !== undefined && !/^-?\d{1,19}$/.test(req.seed)) {
      return bad("seed must be a whole number (or empty for a random one), got “" + req.seed + "”");
    }
    return null;
  }

  async function run(req) {
    if (running) running.abort();
    clearError();
    const bad = checkLocally(req);
    if (bad) {
      showError(bad, req);
      return;
    }
    const ctl = new AbortController();
    running = ctl;
    $("stop").disabled = false;
    placeholders(req.count);
    let got = 0;
    const started = performance.now();
    statusLine.textContent = "Asking for " + req.count + " image" + (req.count === 1 ? "" : "s") + "…";
    try {
      await generate(req, ctl.signal, (msg) => {
        fill(msg);
        got++;
        statusLine.textContent = got + " of " + req.count + " images…";
      }, showPreview);
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      const seed0 = gallery.children[0] && gallery.children[0].dataset.seed;
      statusLine.textContent = got + " image" + (got === 1 ? "" : "s") + " in " + secs + " s" + (seed0 ? ", seeds from " + seed0 : "") + ".";
    } catch (err) {
      if (running !== ctl && err.code === "CANCELLED") return; // replaced by a newer request
      if (!(err instanceof APIError)) err = new APIError("INTERNAL", String(err.message || err), 0);
      // With previews the stream starts before any image is finished, so a
      // refusal the gateway would have answered at once (no upscaler left,
      // say) can come as an error line after previews: with no final image
      // it is shown as the refusal it is, and the previews go.
      if (got === 0 && err.code !== "CANCELLED") err.midStream = undefined;
      showError(err, req);
      statusLine.textContent = got + " of " + req.count + " images.";
      for (const li of gallery.querySelectorAll('[data-state="waiting"], [data-state="preview"]')) {
        li.dataset.state = "missing";
        const wait = li.querySelector(".wait");
        if (wait) wait.textContent = "not made";
        const tag = li.querySelector(".tag");
        if (tag) tag.textContent = "not made · " + tag.textContent;
      }
      if (got === 0 && err.midStream === undefined) gallery.textContent = "";
    } finally {
      if (running === ctl) {
        running = null;
        $("stop").disabled = true;
      }
    }
  }

  async function loadModel() {
    const name = $("model").value.trim();
    const version = $("version").value.trim();
    try {
      const r = await fetchLabels(name, version);
      const g = r.generator || {};
      served = { name: g.name, version: g.version, labels: r.labels || [] };
      $("served").textContent = "Serving " + (g.name || "a model") + " @ " + short(g.version) + (served.labels.length ? " · " + served.labels.length + " label" + (served.labels.length === 1 ? "" : "s") : "");
      $("served").title = g.version || "";
      const sel = $("label");
      const keep = sel.value;
      sel.length = 1;
      for (const l of served.labels) sel.add(new Option(l, l));
      sel.value = served.labels.includes(keep) ? keep : "";
      $("label-row").hidden = served.labels.length === 0;
      return true;
    } catch (err) {
      // Said in the header, not in the error box: that box is the last
      // request's, and this call races with it when a field changes.
      $("label-row").hidden = true;
      const who = name || version ? "“" + [name, version].filter(Boolean).join("@") + "”" : "the served model";
      $("served").textContent = "Could not look up " + who + " (" + err.code + (err.code === "NETWORK" ? ": the gateway did not answer" : "") + ")";
      $("served").title = err.message;
      markField(err);
      return false;
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    run(request());
  });
  $("stop").addEventListener("click", () => running && running.abort());
  $("retry").addEventListener("click", () => run(request()));
  for (const id of ["model", "version"]) $(id).addEventListener("change", loadModel);
  for (const f of fields) $(f).addEventListener("input", () => $(f).removeAttribute("aria-invalid"));

  // Opening the page shows a first set from the default model, no click.
  loadModel();
  run({ count: firstSetCount, previews: true });
})();
