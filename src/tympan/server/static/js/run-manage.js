// Run management in the UI: rename, retag, annotate, archive and delete runs through the API
// (PATCH /api/runs/ID, POST /api/runs/archive|delete) with the session's token, and a run's
// audit trail (GET /api/events?run=ID). Every rule lives on the server (track/manage.py); the
// UI only asks and shows the answer. A token that may only read sees the controls disabled,
// with the reason in their tooltip.
import { api, enc } from "./api.js";
import { showNotice } from "./banner.js";
import { h, fmt, fmtTime, fmtBytes, empty } from "./dom.js";
import { state } from "./state.js";

/** Whether the session's token may change runs (scope write or admin). */
export function canWrite() {
  const scope = state.who && state.who.scope;
  return scope === "write" || scope === "admin";
}

function readOnlyReason() {
  const scope = (state.who && state.who.scope) || "none";
  return `Read-only: your token has scope ${scope}. Changing runs needs a token with scope write ` +
    "(tympan token create --scope write).";
}

/** A button that changes runs; for a read-only token it is disabled and says why. */
export function writeButton(tag, label, onclick, attrs = {}) {
  if (canWrite()) return h(tag, { type: "button", ...attrs, onclick }, label);
  const reason = readOnlyReason();
  // a disabled button gets no mouse events in every browser: the wrapper carries the tooltip
  return h("span.read-only", { title: reason },
    h(tag, { type: "button", ...attrs, title: reason, disabled: true }, label));
}

/** A modal asking before something that cannot be undone; resolves true when confirmed. */
export function confirmDialog({ title, body, confirm }) {
  return new Promise((resolve) => {
    const done = (answer) => {
      document.removeEventListener("keydown", onKey, true);
      backdrop.remove();
      resolve(answer);
    };
    const onKey = (event) => { if (event.key === "Escape") { event.stopPropagation(); done(false); } };
    const cancel = h("button.btn#confirm-cancel", { type: "button", onclick: () => done(false) }, "Cancel");
    const backdrop = h("div.dialog-backdrop#confirm-dialog", { onclick: (event) => { if (event.target === backdrop) done(false); } },
      h("div.dialog-panel", { role: "alertdialog", "aria-modal": "true", "aria-labelledby": "confirm-title" },
        h("h2#confirm-title", title), body,
        h("div.pop-actions", cancel, h("button.btn.danger#confirm-ok", { type: "button", onclick: () => done(true) }, confirm))));
    document.addEventListener("keydown", onKey, true);
    document.body.append(backdrop);
    cancel.focus();  // Enter on a dialog that deletes must not delete
  });
}

const plural = (n, word) => `${fmt(n)} ${word}${n === 1 ? "" : "s"}`;

/** Ask, then delete ``runs`` ([{id, name}]) with their child runs; ``children`` are the
 *  child runs the page knows of ([{id, name}]). Resolves to the server's answer, or null when
 *  the user said no or the server refused (its reason is shown in the error banner). */
export async function deleteRuns(runs, children = []) {
  const one = runs.length === 1;
  const kids = children.filter((c) => !runs.some((r) => r.id === c.id));
  const body = h("div.dialog-body",
    h("ul.dialog-runs", runs.slice(0, 8).map((r) => h("li", h("b", r.name), " ", h("code", r.id.slice(0, 8)))),
      runs.length > 8 ? h("li.muted", `and ${runs.length - 8} more`) : null),
    h("p", `This deletes ${one ? "its" : "their"} metrics, audio, images, tables, artifacts and config`,
      kids.length ? `, and ${plural(kids.length, "child run")} with everything under them (${kids.slice(0, 5).map((c) => c.name).join(", ")}${kids.length > 5 ? ", …" : ""})`
        : `, and ${one ? "its" : "their"} child runs if any (a probe job's runs)`,
      ". Stored files (audio, images, artifacts) that no other run uses are removed from disk."),
    h("p.muted", "It cannot be undone. Archive hides a run from the table instead, and keeps it."));
  const confirmed = await confirmDialog({ title: one ? `Delete run ${runs[0].name}?` : `Delete ${plural(runs.length, "run")}?`,
    body, confirm: one ? "Delete run" : `Delete ${plural(runs.length, "run")}` });
  if (!confirmed) return null;
  let answer;
  try { answer = await api.post("runs/delete", { runs: runs.map((r) => r.id) }); } catch { return null; }
  const deletedKids = answer.children.length;  // ``deleted`` counts them too
  showNotice(`Deleted ${plural(answer.deleted.length - deletedKids, "run")}` +
    (deletedKids ? ` and ${plural(deletedKids, "child run")}` : "") +
    `; ${plural(answer.blob_files, "stored file")} collected (${fmtBytes(answer.blob_bytes)}).`);
  return answer;
}

/** Archive (or unarchive) runs; resolves to the ids whose state changed, null if refused. */
export async function archiveRuns(ids, archived) {
  try {
    const { changed } = await api.post("runs/archive", { runs: ids, archived });
    showNotice(`${archived ? "Archived" : "Unarchived"} ${plural(changed.length, "run")}` +
      (archived ? ": hidden from the runs table unless Show archived is on." : "."));
    return changed;
  } catch { return null; }
}

/** PATCH one run; resolves to its fields as they are now ({id, name, tags, note,
 *  archived_at, changed}), or null when the server refused (the banner says why). */
export async function editRun(runId, patch) {
  try { return await api.patch(`runs/${enc(runId)}`, patch); } catch { return null; }
}

/** An inline editor: shows ``view()`` (if any) and a button named ``label`` (or what ``label()``
 *  says) that swaps in ``field`` with Save and Cancel (Enter saves a one-line field,
 *  Escape cancels). ``save(value)`` resolves true when the change was kept. */
function inlineEditor({ id, view, field, label, save }) {
  const slot = h("span.inline-edit", { dataset: { edit: id } });
  const show = () => {
    const text = typeof label === "function" ? label() : label;
    slot.replaceChildren(...[view()].filter(Boolean), writeButton("button.btn.ghost.small.edit-button", text, edit, { id: `edit-${id}`, "aria-label": text }));
  };
  const edit = () => {
    const input = field();
    const submit = async (event) => {
      event.preventDefault();
      saveBtn.disabled = true;
      if (await save(input.value)) show(); else saveBtn.disabled = false;
    };
    const saveBtn = h("button.btn.primary.small", { type: "submit", id: `save-${id}` }, "Save");
    const form = h("form.inline-form", { onsubmit: submit }, input, saveBtn,
      h("button.btn.ghost.small", { type: "button", onclick: show }, "Cancel"));
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { event.stopPropagation(); show(); }
      if (event.key === "Enter" && input.tagName === "TEXTAREA" && (event.ctrlKey || event.metaKey)) submit(event);
    });
    slot.replaceChildren(form);
    input.focus();
    input.select();
  };
  show();
  return { root: slot, show };
}

/** The run page's editable head: the name (Rename), the tags (× removes one, the field
 *  adds one), the note (Edit note), Archive/Unarchive, Delete, and an "archived" badge.
 *  ``onChange(run)`` follows every kept change; ``onDeleted()`` a delete. */
export function runEditor(run, { onChange = () => {}, onDeleted = () => {} } = {}) {
  const current = { id: run.id, name: run.name, tags: [...(run.tags || [])], note: run.note || "",
    archived_at: run.archived_at ?? null };
  const apply = async (patch) => {
    const fields = await editRun(run.id, patch);
    if (!fields) return false;
    Object.assign(current, { name: fields.name, tags: fields.tags, note: fields.note || "", archived_at: fields.archived_at });
    renderTags();
    renderArchived();
    onChange(current);
    return true;
  };

  const name = inlineEditor({ id: "name", label: "Rename",
    view: () => h("span.run-name", current.name),
    field: () => h("input.rename-input#rename-input", { type: "text", value: current.name, "aria-label": "run name", maxlength: 200, required: true }),
    save: (value) => (value.trim() === current.name ? true : apply({ name: value.trim() })) });

  const note = inlineEditor({ id: "note", label: () => (current.note ? "Edit note" : "Add a note"),
    view: () => (current.note ? h("span.note-text", current.note) : null),
    field: () => { const t = h("textarea.note-input#note-input", { rows: 3, "aria-label": "note", maxlength: 100000 }); t.value = current.note; return t; },
    save: (value) => (value === current.note ? true : apply({ note: value })) });

  const tags = h("div.tag-row.tag-editor");
  function renderTags() {
    const add = h("input.tag-add#tag-add", { type: "text", placeholder: "+ tag", "aria-label": "add a tag", maxlength: 100, size: 8 });
    add.addEventListener("keydown", async (event) => {
      if (event.key !== "Enter" || !add.value.trim()) return;
      event.preventDefault();
      const tag = add.value.trim();
      if (!current.tags.includes(tag)) await apply({ add_tags: [tag] });
    });
    tags.replaceChildren(...current.tags.map((t) => h("span.tag", { dataset: { tag: t } }, t,
      canWrite() ? h("button.tag-x", { type: "button", title: `Remove tag ${t}`, "aria-label": `remove tag ${t}`,
        onclick: () => apply({ remove_tags: [t] }) }, "×") : null)),
    ...(canWrite() ? [add] : []));
  }
  renderTags();

  const archivedSlot = h("span.archived-slot");
  const archiveSlot = h("span");
  function renderArchived() {
    const archived = current.archived_at !== null && current.archived_at !== undefined;
    archivedSlot.replaceChildren(...(archived ? [h("span.badge.archived-badge", { title: `archived ${fmtTime(current.archived_at)}` }, "archived")] : []));
    archiveSlot.replaceChildren(writeButton("button.btn", archived ? "Unarchive" : "Archive",
      () => apply({ archived: !archived }), { id: "archive-run",
        title: archived ? "Show this run in the runs table again" : "Hide this run from the runs table (it still opens by its link)" }));
  }
  renderArchived();

  const remove = writeButton("button.btn.danger-ghost", "Delete", async () => {
    if (await deleteRuns([current], run.children || [])) onDeleted();
  }, { id: "delete-run", title: "Delete this run and its child runs" });

  return { name: name.root, note: note.root, tags, archived: archivedSlot, actions: [archiveSlot, remove], current };
}

function describe(event) {
  const d = event.detail || {};
  const list = (tags) => (tags && tags.length ? tags.join(", ") : "none");
  switch (event.action) {
    case "rename": return `${d.before} → ${d.after}`;
    case "tags": return `${list(d.before)} → ${list(d.after)}`;
    case "note": return d.after ? `“${String(d.after).slice(0, 140)}${String(d.after).length > 140 ? "…" : ""}”` : "note removed";
    case "archive": return "hidden from the runs table";
    case "unarchive": return "shown in the runs table again";
    case "delete": return `deleted ${d.name || ""} (${d.status || ""})`;
    default: return JSON.stringify(d);
  }
}

/** A run's audit trail, newest first: who changed what, when. */
export async function historyView(runId) {
  const { events } = await api.get("events", { run: runId, limit: 200 });
  if (!events.length) return empty("Nobody changed this run since it was logged: renames, tags, notes, archiving and deletes show here, with who made them.");
  return h("div.table-wrap", h("table.grid.history-table",
    h("thead", h("tr", h("th", "when"), h("th", "who"), h("th", "what"), h("th", "change"))),
    h("tbody", events.map((e) => h("tr", { dataset: { action: e.action } }, h("td.nowrap", fmtTime(e.at)), h("td", e.actor),
      h("td", h("span.badge.rule", e.action)), h("td.history-detail", describe(e)))))));
}

/** The runs table's "+" in a row's tags: a field in place that adds the tag (Enter) or goes
 *  away (Escape, or leaving it); ``onDone()`` after the tag was added. */
export function tagAdder(run, onDone) {
  const button = h("button.tag-plus", { type: "button", title: `Add a tag to ${run.name}`, "aria-label": `add a tag to ${run.name}` });
  button.addEventListener("click", () => {
    const input = h("input.tag-add", { type: "text", placeholder: "tag", "aria-label": `new tag for ${run.name}`, maxlength: 100, size: 8 });
    const restore = () => input.isConnected && input.replaceWith(button);
    input.addEventListener("keydown", async (event) => {
      if (event.key === "Escape") { event.stopPropagation(); restore(); }
      if (event.key !== "Enter" || !input.value.trim()) return;
      event.preventDefault();
      if (await editRun(run.id, { add_tags: [input.value.trim()] })) onDone();
    });
    input.addEventListener("blur", () => setTimeout(restore, 150));
    button.replaceWith(input);
    input.focus();
  });
  return button;
}

/** The runs table's Archive N (Unarchive N when every selected run is archived) and Delete N
 *  buttons for ``selected`` (a Set of ids, some maybe on other pages); ``pageRuns()`` gives
 *  the rows shown (their children go in the delete dialog). Deleted runs leave ``selected``;
 *  ``onDone()`` follows any change. */
export function selectionActions(selected, pageRuns, onDone) {
  const known = new Map();  // every row seen, by id: the names the delete dialog shows
  const isArchived = (id) => known.get(id)?.archived_at != null;
  const archive = writeButton("button.btn#archive-selected", "Archive", async () => {
    const ids = [...selected];
    if (await archiveRuns(ids, !ids.every(isArchived))) onDone();
  }, { title: "Archive the selected runs: hidden from the table unless Show archived is on" });
  const remove = writeButton("button.btn.danger-ghost#delete-selected", "Delete", async () => {
    const runs = [...selected].map((id) => known.get(id) || { id, name: id.slice(0, 8) });
    const answer = await deleteRuns(runs, pageRuns().filter((r) => r.parent_id && selected.has(r.parent_id)));
    if (!answer) return;
    [...answer.deleted, ...answer.children].forEach((id) => selected.delete(id));
    onDone();
  }, { title: "Delete the selected runs and their child runs (asks first)" });
  const update = () => {
    const every = selected.size > 0 && [...selected].every(isArchived);
    for (const [holder, label] of [[archive, every ? "Unarchive" : "Archive"], [remove, "Delete"]]) {
      holder.hidden = selected.size === 0;
      (holder.tagName === "BUTTON" ? holder : holder.querySelector("button")).textContent = `${label} ${selected.size}`;
    }
  };
  return { archive, remove, update, seen: (runs) => runs.forEach((r) => known.set(r.id, r)) };
}

/** The runs table's editor for one run (its row's ✎ button): name, tags and note in one
 *  form, Archive/Unarchive and Delete. The run is read first (the table rows carry no note,
 *  and the delete dialog names its child runs). ``onChange()`` after a kept change or delete. */
export async function editRunDialog(runId, { onChange = () => {} } = {}) {
  const run = await api.get(`runs/${enc(runId)}`);
  const children = run.children || [];
  const nameIn = h("input#edit-name", { type: "text", value: run.name, maxlength: 200, required: true, "aria-label": "name" });
  const tagsIn = h("input#edit-tags", { type: "text", value: (run.tags || []).join(", "), placeholder: "comma-separated", "aria-label": "tags" });
  const noteIn = h("textarea#edit-note", { rows: 3, "aria-label": "note" });
  noteIn.value = run.note || "";
  const close = () => { document.removeEventListener("keydown", onKey, true); backdrop.remove(); };
  const onKey = (event) => { if (event.key === "Escape") { event.stopPropagation(); close(); } };
  const archived = run.archived_at !== null && run.archived_at !== undefined;
  const form = h("form.pop-form", { onsubmit: async (event) => {
    event.preventDefault();
    const patch = {};
    const tags = tagsIn.value.split(",").map((t) => t.trim()).filter(Boolean);
    if (nameIn.value.trim() !== run.name) patch.name = nameIn.value.trim();
    if (JSON.stringify(tags) !== JSON.stringify(run.tags || [])) patch.tags = tags;
    if (noteIn.value !== (run.note || "")) patch.note = noteIn.value;
    if (Object.keys(patch).length && !(await editRun(run.id, patch))) return;
    close();
    if (Object.keys(patch).length) onChange();
  } },
  h("label.field", h("span", "Name"), nameIn),
  h("label.field", h("span", "Tags"), tagsIn),
  h("label.field", h("span", "Note"), noteIn),
  h("div.pop-actions.edit-actions",
    h("button.btn.danger-ghost#edit-delete", { type: "button", onclick: async () => {
      close();
      if (await deleteRuns([run], children)) onChange();
    } }, "Delete…"),
    h("button.btn#edit-archive", { type: "button", onclick: async () => {
      close();
      if (await archiveRuns([run.id], !archived)) onChange();
    } }, archived ? "Unarchive" : "Archive"),
    h("span.spacer"),
    h("button.btn.ghost", { type: "button", onclick: close }, "Cancel"),
    h("button.btn.primary#edit-save", { type: "submit" }, "Save")));
  const backdrop = h("div.dialog-backdrop#edit-run-dialog", { onclick: (event) => { if (event.target === backdrop) close(); } },
    h("div.dialog-panel", { role: "dialog", "aria-modal": "true", "aria-labelledby": "edit-run-title" },
      h("h2#edit-run-title", "Edit run ", h("code", run.id.slice(0, 8))), form));
  document.addEventListener("keydown", onKey, true);
  document.body.append(backdrop);
  nameIn.focus();
}
