// The console's only script besides htmx: upload progress bars and the manifest drafted from a file.
// Loaded from the gateway (CSP 'self').
document.addEventListener("htmx:xhr:progress", function (event) {
  var form = event.target.closest ? event.target.closest("form") : null;
  var bar = form ? form.querySelector("progress") : null;
  if (bar && event.detail.lengthComputable && event.detail.total > 0) {
    bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
  }
});

// The manifest drafted from the file the steward picks: a capped sample (the head of a CSV file, the tail
// of a Parquet file, where its schema lives) goes to the gateway, which infers the columns' types with the
// CLI's code and answers with a table of choices; the choices are copied into the manifest's JSON.
var DRAFT_SAMPLE_BYTES = 64 * 1024;

function draftSample(file) {
  var parquet = /\.parquet$/i.test(file.name);
  var whole = file.size <= DRAFT_SAMPLE_BYTES;
  var part = whole ? file : parquet ? file.slice(file.size - DRAFT_SAMPLE_BYTES) : file.slice(0, DRAFT_SAMPLE_BYTES);
  return { blob: part, format: parquet ? "parquet" : "csv", whole: whole };
}

function csrfOf(form) {
  try {
    return JSON.parse(form.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
  } catch (e) {
    return "";
  }
}

function copyDraftToManifest(drafted) {
  var form = drafted.closest("form");
  var area = form ? form.querySelector("textarea[name=manifest]") : null;
  if (!area) return;
  var manifest;
  try {
    manifest = JSON.parse(area.value || "{}");
  } catch (e) {
    manifest = {};
  }
  if (!manifest || !Array.isArray(manifest.tables)) manifest = { tables: [] };
  var name = drafted.getAttribute("data-drafted-table");
  var before = manifest.tables.filter(function (t) { return t && t.name === name; })[0] || { columns: [] };
  var kept = {};
  (before.columns || []).forEach(function (c) { kept[c.name] = c; });
  var columns = [];
  drafted.querySelectorAll("tr[data-column]").forEach(function (row) {
    var column = row.getAttribute("data-column");
    // What the header cannot tell (a declared value domain, nullability) stays as the steward wrote it.
    var c = Object.assign({}, kept[column] || {}, { name: column });
    c.type = row.querySelector("select[data-field=type]").value;
    c["class"] = row.querySelector("select[data-field=class]").value;
    columns.push(c);
  });
  var table = { name: name, unit: drafted.querySelector("select[data-field=unit]").value, columns: columns };
  var replaced = false;
  manifest.tables = manifest.tables.map(function (t) {
    if (t && t.name === name) { replaced = true; return table; }
    return t;
  });
  if (!replaced) manifest.tables.push(table);
  area.value = JSON.stringify(manifest, null, 2);
}

// A column the manifest already declares keeps its type and class (a previous version's "identifying"
// must not fall back to the draft's "internal" unnoticed); new columns keep the draft's guess.
function keepEarlierChoices(drafted) {
  var area = drafted.closest("form").querySelector("textarea[name=manifest]");
  var manifest;
  try {
    manifest = JSON.parse(area.value || "{}");
  } catch (e) {
    return;
  }
  var name = drafted.getAttribute("data-drafted-table");
  var before = ((manifest && manifest.tables) || []).filter(function (t) { return t && t.name === name; })[0];
  if (!before) return;
  var declared = {};
  (before.columns || []).forEach(function (c) { declared[c.name] = c; });
  drafted.querySelectorAll("tr[data-column]").forEach(function (row) {
    var earlier = declared[row.getAttribute("data-column")];
    if (!earlier) return;
    ["type", "class"].forEach(function (field) {
      var select = row.querySelector("select[data-field=" + field + "]");
      if (earlier[field] && select.querySelector('option[value="' + earlier[field] + '"]')) select.value = earlier[field];
    });
  });
  var unit = drafted.querySelector("select[data-field=unit]");
  if (before.unit && unit.querySelector('option[value="' + before.unit + '"]')) unit.value = before.unit;
}

document.addEventListener("change", function (event) {
  var target = event.target;
  var drafted = target.closest ? target.closest("[data-drafted-table]") : null;
  if (drafted) {
    copyDraftToManifest(drafted);
    return;
  }
  if (!target.matches || !target.matches("input[type=file][data-draft-url]") || !target.files.length) return;
  var form = target.closest("form");
  var box = form.querySelector('[data-draft-for="' + target.getAttribute("data-draft-table") + '"]');
  var sample = draftSample(target.files[0]);
  var url = target.getAttribute("data-draft-url") + "?table=" + encodeURIComponent(target.getAttribute("data-draft-table")) +
    "&format=" + sample.format + (sample.whole ? "&whole=true" : "");
  fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": csrfOf(form), "Content-Type": "application/octet-stream" },
    body: sample.blob,
  }).then(function (answer) {
    return answer.text().then(function (text) {
      if (!answer.ok) {
        var problem = {};
        try { problem = JSON.parse(text); } catch (e) { problem = {}; }
        box.textContent = problem.detail || answer.statusText;
        return;
      }
      box.innerHTML = text;
      var drafted = box.querySelector("[data-drafted-table]");
      if (!drafted) return;
      keepEarlierChoices(drafted);
      copyDraftToManifest(drafted);
    });
  });
});
