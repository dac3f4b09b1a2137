// The page talks to the same server's API: links and collection, the chat stream, traces.
const $ = (id) => document.getElementById(id);
const keyInput = $("api-key");
keyInput.value = localStorage.getItem("twin-api-key") || "";
keyInput.addEventListener("change", () => { localStorage.setItem("twin-api-key", keyInput.value); refreshAll(); });

function headers(json = true) {
  const h = json ? { "Content-Type": "application/json" } : {};
  if (keyInput.value) h["Authorization"] = "Bearer " + keyInput.value;
  return h;
}

function notice(text, bad = false) {
  $("notice").textContent = text;
  $("notice").className = bad ? "bad" : "";
}

async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers() });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((body.error && body.error.message) || response.statusText);
  return body;
}

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
}

async function loadHealth() {
  try {
    const response = await fetch("/health", { headers: headers(false) });
    const report = await response.json();
    if (response.status === 401) { $("health").textContent = "enter the API key"; return; }
    const model = report.model ? "model " + report.model.slice(0, 12) : "no model promoted";
    $("health").textContent = `${report.status} · ${model} · workers ${report.workers_ready ? "ready" : "loading"}`;
    $("model-note").textContent = report.model_note ? "Note: the served model is " + report.model_note + "." : "";
  } catch (error) { $("health").textContent = "server unreachable"; }
}

async function loadAuthors() {
  let authors;
  try { authors = await call("/api/authors"); } catch (error) { notice(error.message, true); return; }
  const container = $("authors");
  container.replaceChildren();
  if (!authors.length) container.append(element("p", { textContent: "No authors yet: add a link above." }));
  for (const author of authors) {
    const collect = element("button", { className: "quiet collect", type: "button", textContent: "Collect" });
    collect.dataset.author = author.name;
    collect.addEventListener("click", () => startCollection(author.name, collect));
    const retrain = element("button", { className: "quiet retrain", type: "button", textContent: "Retrain" });
    retrain.dataset.author = author.name;
    retrain.addEventListener("click", () => startTraining(author.name, retrain));
    const state = author.collection ? ` · collection ${author.collection}` : "";
    const head = element("div", { className: "author-head" },
      [element("strong", { textContent: author.name + state }), element("span", {}, [collect, retrain])]);
    const list = element("ul", { className: "links" });
    for (const link of author.links) {
      const item = element("li", { className: "link" }, [
        element("span", { className: `status status-${link.status}`, textContent: link.status }),
        element("span", { className: "url", textContent: link.url })]);
      if (link.error) item.append(element("span", { className: "error", textContent: link.error }));
      list.append(item);
    }
    container.append(element("div", { className: "author" }, [head, twinPanel(author), list]));
  }
}

function figure(value) { return value === null || value === undefined ? "–" : Number(value).toFixed(3); }

// The author's twin: the model that answers them, when it was trained, its evaluation against the base
// model, a candidate waiting for approval, and the state of a retraining started here.
function twinPanel(author) {
  const twin = author.twin, model = twin.model;
  const panel = element("div", { className: "twin" });
  if (!model) {
    panel.append(element("p", { textContent: "No model is promoted yet." }));
  } else {
    const whose = twin.own ? "Twin" : "No twin of their own yet: the shared model";
    const when = new Date(model.trained_at).toLocaleString();
    panel.append(element("p", { className: "twin-model",
      textContent: `${whose} ${model.version.slice(0, 12)} (${model.kind}), trained ${when}` +
                   (model.from_scratch ? " · the small model trained here from scratch" : "") }));
    if (model.evaluation.length) {
      const rows = model.evaluation.map((e) => element("tr", {}, [
        element("td", { textContent: e.metric }), element("td", { textContent: figure(e.model) }),
        element("td", { textContent: figure(e.base) })]));
      panel.append(element("table", { className: "evaluation" }, [
        element("thead", {}, [element("tr", {}, ["metric", "twin", "base"].map((h) => element("th", { textContent: h })))]),
        element("tbody", {}, rows)]));
    }
  }
  if (twin.candidate) {
    const approve = element("button", { className: "approve", type: "button", textContent: "Approve" });
    approve.dataset.author = author.name;
    approve.addEventListener("click", () => approveCandidate(author.name, twin.candidate.version, approve));
    panel.append(element("p", { className: "candidate" }, [
      document.createTextNode(`Candidate ${twin.candidate.version.slice(0, 12)} waits for approval: ${twin.candidate.reason} `),
      approve]));
  }
  if (author.training) panel.append(element("p", { className: "training", textContent: `training ${author.training}` }));
  return panel;
}

async function startTraining(author, button) {
  button.disabled = true;
  try {
    const launch = await call("/api/retrain", { method: "POST", body: JSON.stringify({ author }) });
    notice(launch.how === "dagster" ? `Dagster training run ${launch.detail} launched: ${launch.url}`
                                    : `training for ${author}: ${launch.detail}`);
  } catch (error) { notice(error.message, true); }
  button.disabled = false;
  loadAuthors();
}

async function approveCandidate(author, version, button) {
  button.disabled = true;
  try {
    const promotion = await call("/api/approve", { method: "POST", body: JSON.stringify({ author, version }) });
    notice(`${promotion.version.slice(0, 12)} now answers for ${author}`);
  } catch (error) { notice(error.message, true); button.disabled = false; }
  loadAuthors();
}

async function startCollection(author, button) {
  button.disabled = true;
  try {
    const launch = await call("/api/collect", { method: "POST", body: JSON.stringify({ author }) });
    notice(launch.how === "dagster" ? `Dagster run ${launch.detail} launched: ${launch.url}`
                                    : `collection for ${author}: ${launch.detail}`);
  } catch (error) { notice(error.message, true); }
  button.disabled = false;
  loadAuthors();
}

$("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { author: $("author-name").value, urls: [$("link-url").value] };
  try {
    const result = await call("/api/links", { method: "POST", body: JSON.stringify(body) });
    notice(result.added.length ? `added ${result.added.join(", ")}` : "already registered");
    $("link-url").value = "";
  } catch (error) { notice(error.message, true); }
  loadAuthors();
});

function showSources(sources) {
  $("sources").replaceChildren(...sources.map((s) => element("li", { className: "source" }, [
    // only web links become links: a stored javascript: or file: link stays text
    /^https?:\/\//i.test(s.link)
      ? element("a", { href: s.link, textContent: s.title || s.link, target: "_blank", rel: "noopener noreferrer" })
      : element("span", { textContent: `${s.title || ""} (${s.link})` }),
    document.createTextNode(` · ${s.author} · ${Number(s.score).toFixed(3)}`)])));
}

$("chat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("send").disabled = true;
  notice("");
  $("answer").textContent = "";
  $("sources").replaceChildren();
  $("searched").textContent = "";
  const request = { model: "twin", stream: true, messages: [{ role: "user", content: $("prompt").value }] };
  if ($("chat-author").value) request.metadata = { author: $("chat-author").value };
  try {
    const response = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(request) });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || response.statusText);
    }
    await readEvents(response.body, (chunk) => {
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.sources) showSources(chunk.sources);
      if (chunk.retrieval) {
        const { author, category } = chunk.retrieval;
        $("searched").textContent = `searched ${author ? author + "'s" : "every author's"} ${category || "writing"}`;
      }
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) $("answer").textContent += delta.content;
    });
    notice($("answer").textContent ? "" : "The model wrote nothing for this request (an empty answer).");
  } catch (error) { notice(error.message, true); }
  $("send").disabled = false;
  loadTraces();
});

async function readEvents(stream, onChunk) {
  // Server-sent events: "data: {...}" lines separated by blank lines, ending with "data: [DONE]".
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 2);
      if (!line.startsWith("data: ")) continue;
      const data = line.slice(6);
      if (data === "[DONE]") return;
      onChunk(JSON.parse(data));
    }
  }
}

async function loadTraces() {
  let traces;
  try { traces = await call("/api/traces?limit=10"); } catch (error) { return; }
  $("traces").replaceChildren(...traces.map((t) => element("tr", { className: "trace" }, [
    element("td", { textContent: new Date(t.started_at * 1000).toLocaleTimeString() }),
    element("td", { textContent: (t.error ? "⚠ " + t.error + " · " : "") + (t.query || "") }),
    element("td", { textContent: t.seconds.toFixed(2) }),
    element("td", { className: "spans", textContent: t.spans.map((s) => `${s.name} ${(s.seconds * 1000).toFixed(0)}ms`).join(" · ") })])));
}

$("refresh-traces").addEventListener("click", loadTraces);

function refreshAll() { loadHealth(); loadAuthors(); loadTraces(); }
refreshAll();
setInterval(refreshAll, 5000);
