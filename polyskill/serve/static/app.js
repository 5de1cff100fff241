// The page of `polyskill serve`: choose a served model, give a few labelled examples of each class, learn a task
// (POST /v1/tasks), then label queries with it (POST /v1/tasks/{id}/predict). The API is described in docs/serve.md.
// No inline code anywhere (the server's Content-Security-Policy forbids it): everything is wired up here.

const KEY_STORAGE = "polyskill-api-key";
const PALETTE = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#65a30d", "#c026d3",
  "#0d9488"];

const $ = (id) => document.getElementById(id);

const state = {
  models: [], // GET /v1/models: the served models
  limits: {}, // ... and the server's limits
  model: null, // the chosen model's description
  boxes: [], // the class boxes: {n, el, name, files, text, color}
  nextBox: 1,
  task: null, // the learned task (POST /v1/tasks answer), with its class colours
  queries: [], // the query images: {file, url}
  edits: 0, // how many times the examples were edited (a task learned from older examples is not kept)
  busy: false,
};

/** An error answer of the API (or no answer at all: status 0). */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// --- the API -----------------------------------------------------------------------------------------------------

/** Call the API: JSON or FormData in, the parsed JSON answer out, or an ApiError with the server's message. */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) headers.Authorization = `Bearer ${key}`;
  let payload = body;
  if (body !== undefined && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload });
  } catch (err) {
    throw new ApiError(0, "no_answer", `the server did not answer (${err.message}); is it still running?`);
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    if (response.status === 401) showAuth();
    throw new ApiError(
      response.status,
      error.code || "http_error",
      error.message || `the server answered ${response.status} ${response.statusText}`.trim(),
    );
  }
  return data;
}

// --- messages ----------------------------------------------------------------------------------------------------

function showError(title, err) {
  $("error-title").textContent = title;
  $("error-message").textContent = err.message;
  $("error-code").textContent = err.status ? `(${err.code}, HTTP ${err.status})` : "";
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

function showAuth() {
  $("auth").hidden = false;
  $("api-key").focus();
}

function plural(n, word, words = `${word}s`) {
  return `${n} ${n === 1 ? word : words}`;
}

function percent(p) {
  return `${(100 * p).toFixed(p >= 0.9995 || p < 0.0005 ? 0 : 1)}%`;
}

// --- models ------------------------------------------------------------------------------------------------------

async function loadModels() {
  let answer;
  try {
    answer = await api("GET", "v1/models");
  } catch (err) {
    const title = err.status === 401 ? "An API key is needed" : "Could not load the served models";
    showError(title, err);
    $("model-select").replaceChildren(new Option("no models (see above)", ""));
    return;
  }
  clearError();
  $("auth").hidden = true;
  state.models = answer.models;
  state.limits = answer.limits || {};
  const select = $("model-select");
  select.replaceChildren(
    ...state.models.map((m) => new Option(`${m.name} (${m.modality}, ${m.algorithm})`, m.name)),
  );
  select.disabled = state.models.length === 0;
  chooseModel(state.models[0] ? state.models[0].name : null);
}

function describeInput(model) {
  const input = model.input || {};
  if (model.modality === "image") {
    const colour = input.channels === 1 ? "greyscale" : `${input.channels} channels`;
    return `${input.width}×${input.height} ${colour}`;
  }
  if (model.modality === "text") return `up to ${input.max_tokens} tokens${input.truncate ? " (longer texts cut)" : ""}`;
  return "";
}

function chooseModel(name) {
  forgetTask();
  state.model = state.models.find((m) => m.name === name) || null;
  const info = $("model-info");
  info.replaceChildren();
  info.dataset.model = state.model ? state.model.name : "";
  for (const box of [...state.boxes]) removeBox(box);
  state.nextBox = 1;
  setQueries([]);
  $("query-text").value = "";
  $("results").replaceChildren();
  $("predict-status").textContent = "";
  const model = state.model;
  if (!model) {
    $("examples-hint").textContent = "This server serves no model.";
    updateButtons();
    return;
  }
  const facts = [
    ["Modality", model.modality],
    ["Algorithm", model.algorithm],
    ["Classes", `2 to ${model.max_classes}`],
    ["Input", describeInput(model)],
    ["Recipe", model.recipe],
  ];
  for (const [term, value] of facts) {
    const div = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = value;
    dd.dataset.testid = `model-${term.toLowerCase()}`;
    div.append(dt, dd);
    info.append(div);
  }
  const images = model.modality === "image";
  $("examples-hint").textContent = images
    ? "Name each class and give it a few images: drop them into its box or choose them."
    : "Name each class and give it a few example sentences, one a line.";
  $("query-images").hidden = !images;
  $("query-texts").hidden = images;
  $("results").classList.toggle("texts", !images);
  addBox();
  addBox();
  updateButtons();
}

// --- class boxes -------------------------------------------------------------------------------------------------

function addBox() {
  const n = state.nextBox++;
  const el = $("class-template").content.firstElementChild.cloneNode(true);
  const box = { n, el, files: [], color: PALETTE[(n - 1) % PALETTE.length] };
  const images = state.model.modality === "image";
  const name = el.querySelector(".class-name");
  name.value = `class ${n}`;
  el.querySelector(".swatch").style.background = box.color;
  el.style.borderTopColor = box.color;
  el.dataset.box = String(n);
  const text = el.querySelector(".class-text");
  const drop = el.querySelector(".class-drop");
  const files = el.querySelector(".class-files");
  if (images) {
    text.remove();
    el.querySelector(".choose").addEventListener("click", () => files.click());
    files.addEventListener("change", () => {
      addFiles(box, files.files);
      files.value = "";
    });
    wireDrop(drop, (dropped) => addFiles(box, dropped));
  } else {
    drop.remove();
    text.placeholder = "one example a line";
    text.addEventListener("input", () => {
      updateCount(box);
      supportChanged();
    });
  }
  const label = () => {
    const shown = name.value.trim() || `class ${n}`;
    name.setAttribute("aria-label", `Name of class ${n}`);
    el.querySelector(".class-remove").setAttribute("aria-label", `Remove the class ${shown}`);
    el.setAttribute("aria-label", `Class ${shown}`);
    files.setAttribute("aria-label", `Images of the class ${shown}`);
    text.setAttribute("aria-label", `Examples of the class ${shown}, one a line`);
  };
  name.addEventListener("input", () => {
    label();
    supportChanged();
  });
  el.querySelector(".class-remove").addEventListener("click", () => {
    removeBox(box);
    supportChanged();
    $("add-class").focus();
  });
  label();
  state.boxes.push(box);
  updateCount(box);
  $("classes").append(el);
  updateButtons();
  return box;
}

function removeBox(box) {
  for (const item of box.files) URL.revokeObjectURL(item.url);
  box.el.remove();
  state.boxes = state.boxes.filter((b) => b !== box);
  updateButtons();
}

/** Only image files: the others are named in the error area and left out. */
function imagesOnly(fileList) {
  const files = [...fileList];
  const others = files.filter((f) => !f.type.startsWith("image/"));
  if (others.length) {
    const names = others.map((f) => f.name).join(", ");
    showError("Not images, left out", new ApiError(0, "", names));
  }
  return files.filter((f) => f.type.startsWith("image/"));
}

function addFiles(box, fileList) {
  const files = imagesOnly(fileList);
  if (!files.length) return;
  const thumbs = box.el.querySelector(".thumbs");
  for (const file of files) {
    const item = { file, url: URL.createObjectURL(file) };
    box.files.push(item);
    const li = document.createElement("li");
    const img = document.createElement("img");
    img.src = item.url;
    img.alt = file.name;
    img.title = file.name;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "thumb-remove";
    remove.textContent = "×";
    remove.setAttribute("aria-label", `Remove ${file.name}`);
    remove.addEventListener("click", () => {
      box.files = box.files.filter((f) => f !== item);
      URL.revokeObjectURL(item.url);
      li.remove();
      updateCount(box);
      supportChanged();
    });
    li.append(img, remove);
    thumbs.append(li);
  }
  updateCount(box);
  supportChanged();
}

function lines(text) {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

function examplesOf(box) {
  return state.model.modality === "image" ? box.files : lines(box.el.querySelector(".class-text").value);
}

function updateCount(box) {
  const n = examplesOf(box).length;
  const word = state.model.modality === "image" ? "image" : "example";
  box.el.querySelector(".count").textContent = n ? plural(n, word) : `no ${word}s yet`;
}

/** Accept dropped files on `zone` (highlighting it while something is dragged over it). */
function wireDrop(zone, onFiles) {
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer.files.length) onFiles(event.dataTransfer.files);
  });
}

// --- the task ----------------------------------------------------------------------------------------------------

/** The examples were edited: the learned task no longer matches them. */
function supportChanged() {
  state.edits += 1;
  if (state.task) {
    forgetTask();
    $("task-status").textContent = "The examples changed: press Learn to teach them.";
  }
  updateButtons();
}

function forgetTask() {
  if (state.task) {
    api("DELETE", `v1/tasks/${encodeURIComponent(state.task.task_id)}`).catch(() => {});
  }
  state.task = null;
  $("task-status").textContent = "";
  updateButtons();
}

function updateButtons() {
  const ready = state.model !== null && !state.busy;
  $("learn").disabled = !ready || state.boxes.length === 0;
  $("add-class").disabled = !ready || state.boxes.length >= (state.model ? state.model.max_classes : 0);
  $("predict").disabled = !ready || state.task === null;
  $("model-select").disabled = state.busy || state.models.length === 0;
}

function setBusy(button, busy, label) {
  state.busy = busy;
  if (busy) {
    button.dataset.label = button.textContent;
    button.textContent = label;
  } else if (button.dataset.label) {
    button.textContent = button.dataset.label;
  }
  button.setAttribute("aria-busy", String(busy));
  document.body.classList.toggle("busy", busy);
  updateButtons();
}

/** The support set of the boxes as the API takes it, or an Error saying what to fix first. */
function supportBody() {
  const seen = new Set();
  for (const box of state.boxes) {
    const name = box.el.querySelector(".class-name").value.trim();
    if (!name) throw new Error(`class ${box.n} has no name: give it one`);
    if (seen.has(name)) throw new Error(`two classes are named "${name}": give them different names`);
    seen.add(name);
    if (!examplesOf(box).length) throw new Error(`the class "${name}" has no examples: add some or remove it`);
    box.name = name;
  }
  const model = state.model.name;
  if (state.model.modality === "image") {
    const form = new FormData();
    form.append("model", model);
    for (const box of state.boxes) {
      for (const item of box.files) {
        form.append("images", item.file, item.file.name);
        form.append("labels", box.name);
      }
    }
    return form;
  }
  const examples = state.boxes.flatMap((box) => examplesOf(box).map((text) => ({ text, label: box.name })));
  return { model, examples };
}

async function learn() {
  clearError();
  let body;
  try {
    body = supportBody();
  } catch (err) {
    showError("Not ready to learn", err);
    return;
  }
  forgetTask();
  $("results").replaceChildren();
  const button = $("learn");
  const edits = state.edits;
  setBusy(button, true, "Learning…");
  try {
    const task = await api("POST", "v1/tasks", body);
    if (edits !== state.edits) {
      state.task = task;
      forgetTask();
      $("task-status").textContent = "The examples changed while learning: press Learn to teach them.";
      return;
    }
    const colors = {};
    for (const box of state.boxes) colors[box.name] = box.color;
    state.task = { ...task, colors };
    $("task-status").textContent =
      `Learned ${plural(task.classes.length, "class", "classes")} from ${plural(task.examples, "example")}: ` +
      `${task.classes.join(", ")}.`;
  } catch (err) {
    showError("Could not learn the task", err);
  } finally {
    setBusy(button, false);
  }
  if (state.task && hasQueries()) await predict();
}

// --- queries -----------------------------------------------------------------------------------------------------

function setQueries(files) {
  for (const item of state.queries) URL.revokeObjectURL(item.url);
  state.queries = files.map((file) => ({ file, url: URL.createObjectURL(file) }));
  $("query-count").textContent = files.length ? `${plural(files.length, "image")} chosen` : "";
}

function hasQueries() {
  return state.model.modality === "image" ? state.queries.length > 0 : lines($("query-text").value).length > 0;
}

function queriesChosen(fileList) {
  const files = imagesOnly(fileList);
  if (!files.length) return;
  setQueries(files);
  if (state.task) predict();
  else $("predict-status").textContent = "Learn a task first, then these images are labelled.";
}

async function predict() {
  clearError();
  if (!state.task || state.busy) return;
  const images = state.model.modality === "image";
  let body;
  let shown;
  if (images) {
    if (!state.queries.length) {
      showError("Nothing to predict", new Error("drop or choose the images to label first"));
      return;
    }
    body = new FormData();
    for (const item of state.queries) body.append("images", item.file, item.file.name);
    shown = state.queries;
  } else {
    shown = lines($("query-text").value);
    if (!shown.length) {
      showError("Nothing to predict", new Error("type the sentences to label first, one a line"));
      return;
    }
    body = { texts: shown };
  }
  const task = state.task;
  const button = $("predict");
  setBusy(button, true, "Predicting…");
  try {
    const answer = await api("POST", `v1/tasks/${encodeURIComponent(task.task_id)}/predict`, body);
    showResults(answer, shown, task.colors);
    $("predict-status").textContent = `Labelled ${plural(answer.predictions.length, images ? "image" : "sentence")}.`;
  } catch (err) {
    if (err.code === "unknown_task") {
      state.task = null;
      $("task-status").textContent = "The task is gone from the server (it expired): press Learn again.";
    }
    showError("Could not predict", err);
  } finally {
    setBusy(button, false);
  }
}

function bar(p, color, testid) {
  const outer = document.createElement("div");
  outer.className = "bar";
  outer.setAttribute("role", "meter");
  outer.setAttribute("aria-valuemin", "0");
  outer.setAttribute("aria-valuemax", "1");
  outer.setAttribute("aria-valuenow", String(p));
  outer.dataset.testid = testid;
  const fill = document.createElement("div");
  fill.className = "bar-fill";
  fill.style.width = `${(100 * p).toFixed(2)}%`;
  fill.style.background = color;
  outer.append(fill);
  return outer;
}

function showResults(answer, shown, colors) {
  const rows = answer.predictions.map((prediction, i) => {
    const li = document.createElement("li");
    li.className = "result";
    li.dataset.testid = "result";
    li.dataset.label = prediction.label;
    li.dataset.confidence = String(prediction.confidence);
    li.dataset.probabilities = JSON.stringify(prediction.probabilities);
    const query = document.createElement("div");
    query.className = "query";
    if (typeof shown[i] === "string") {
      const p = document.createElement("p");
      p.className = "query-text";
      p.dataset.testid = "result-query";
      p.textContent = shown[i];
      query.append(p);
    } else {
      const img = document.createElement("img");
      img.src = shown[i].url;
      img.alt = prediction.name;
      img.dataset.testid = "result-query";
      const name = document.createElement("span");
      name.className = "query-name";
      name.textContent = prediction.name;
      query.append(img, name);
    }
    const main = document.createElement("div");
    main.className = "prediction";
    const head = document.createElement("div");
    head.className = "prediction-head";
    const label = document.createElement("span");
    label.className = "result-label";
    label.dataset.testid = "result-label";
    label.textContent = prediction.label;
    const pct = document.createElement("span");
    pct.className = "result-pct";
    pct.textContent = percent(prediction.confidence);
    head.append(label, pct);
    const color = colors[prediction.label] || PALETTE[0];
    main.append(head, bar(prediction.confidence, color, "result-bar"));
    const others = document.createElement("ul");
    others.className = "others";
    answer.classes
      .map((name, k) => [name, prediction.probabilities[k]])
      .filter(([name]) => name !== prediction.label)
      .sort((a, b) => b[1] - a[1])
      .forEach(([name, p]) => {
        const item = document.createElement("li");
        const text = document.createElement("span");
        text.className = "other-name";
        text.textContent = name;
        const value = document.createElement("span");
        value.className = "other-pct";
        value.textContent = percent(p);
        item.append(text, bar(p, colors[name] || PALETTE[0], "other-bar"), value);
        others.append(item);
      });
    main.append(others);
    li.append(query, main);
    return li;
  });
  $("results").replaceChildren(...rows);
}

// --- wiring ------------------------------------------------------------------------------------------------------

function start() {
  // a file dropped next to a drop zone must not make the browser leave the page to show it
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  $("error-close").addEventListener("click", clearError);
  $("auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("api-key").value = "";
    loadModels();
  });
  $("model-select").addEventListener("change", (event) => chooseModel(event.target.value));
  $("add-class").addEventListener("click", () => {
    const box = addBox();
    supportChanged();
    box.el.querySelector(".class-name").select();
    box.el.querySelector(".class-name").focus();
  });
  $("learn").addEventListener("click", learn);
  $("predict").addEventListener("click", predict);
  $("query-choose").addEventListener("click", () => $("query-files").click());
  $("query-files").addEventListener("change", () => {
    queriesChosen($("query-files").files);
    $("query-files").value = "";
  });
  wireDrop($("query-drop"), queriesChosen);
  $("query-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      predict();
    }
  });
  loadModels();
}

start();
