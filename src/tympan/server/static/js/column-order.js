// The runs table's column order and pins. Each column header has a ⋮ menu (pin or unpin, move
// left or right, hide) and can be dragged onto another header of its kind (config or metric);
// pinned columns stay in view at the left while the table scrolls sideways. The name column is
// pinned by default. Pins are kept per project in localStorage (tympan.pins.PROJECT), the order
// with the column choice (tympan.columns.PROJECT, or the link's cols=).
import { h } from "./dom.js";

export const DEFAULT_PINS = ["name"];

export function savedPins(project) {
  try {
    const pins = JSON.parse(localStorage.getItem(`tympan.pins.${project}`) || "null");
    return Array.isArray(pins) ? pins : [...DEFAULT_PINS];
  } catch { return [...DEFAULT_PINS]; }
}

export function savePins(project, pins) {
  localStorage.setItem(`tympan.pins.${project}`, JSON.stringify(pins));
}

const kindOf = (col) => col.split(":")[0];

/** ``columns`` with ``col`` swapped with its neighbour (step -1 or +1) among ``shown``, the
 *  columns drawn beside it (the pinned ones, the config ones or the metric ones). */
export function moved(columns, shown, col, step) {
  const other = shown[shown.indexOf(col) + step];
  if (!shown.includes(col) || other === undefined || !columns.includes(col)) return columns;
  return columns.map((c) => (c === col ? other : c === other ? col : c));
}

/** ``columns`` with ``col`` dropped on ``target``: it takes the target's place. */
export function placed(columns, col, target) {
  const from = columns.indexOf(col), to = columns.indexOf(target);
  if (from < 0 || to < 0 || from === to) return columns;
  const rest = columns.filter((c) => c !== col);
  rest.splice(to, 0, col);
  return rest;
}

let openMenu = null;

function closeMenu() {
  if (!openMenu) return;
  openMenu.remove();
  openMenu = null;
}

document.addEventListener("mousedown", (event) => { if (openMenu && !openMenu.contains(event.target)) closeMenu(); });
document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeMenu(); });
window.addEventListener("scroll", closeMenu, true);

/** The ⋮ button of a header: ``actions`` are [{id, label, run, disabled}] shown in a menu
 *  under it. Its click never sorts the column. */
export function columnMenu(label, actions) {
  const button = h("button.col-menu-button", { type: "button", title: `Column menu: ${label}`,
    "aria-label": `column menu for ${label}`, "aria-haspopup": "menu" });
  button.addEventListener("click", (event) => {
    event.stopPropagation();
    const wasMine = openMenu && openMenu.dataset.for === label;
    closeMenu();
    if (wasMine) return;
    const box = button.getBoundingClientRect();
    openMenu = h("div.col-menu", { role: "menu", dataset: { for: label },
      style: { top: `${box.bottom + 4}px`, left: `${Math.max(4, Math.min(box.left, innerWidth - 200))}px` } },
    actions.filter(Boolean).map((a) => h("button.col-menu-item", { type: "button", role: "menuitem", dataset: { action: a.id },
      disabled: a.disabled, onclick: () => { closeMenu(); a.run(); } }, a.label)));
    document.body.append(openMenu);
    openMenu.querySelector("button:not([disabled])")?.focus();
  });
  button.addEventListener("mousedown", (event) => event.stopPropagation());
  return button;
}

/** Let a header be dragged onto another header of the same kind; ``onDrop(col, target)``. */
export function draggable(th, col, onDrop) {
  th.draggable = true;
  th.dataset.column = col;
  th.addEventListener("dragstart", (event) => {
    event.dataTransfer.setData("text/x-tympan-column", col);
    event.dataTransfer.effectAllowed = "move";
  });
  th.addEventListener("dragover", (event) => {
    if (!event.dataTransfer.types.includes("text/x-tympan-column")) return;
    event.preventDefault();
    th.classList.add("drop-target");
  });
  th.addEventListener("dragleave", () => th.classList.remove("drop-target"));
  th.addEventListener("drop", (event) => {
    event.preventDefault();
    th.classList.remove("drop-target");
    const from = event.dataTransfer.getData("text/x-tympan-column");
    if (from && from !== col && kindOf(from) === kindOf(col)) onDrop(from, col);
  });
}

/** Make the cells of every header marked ``pinned`` (and the column under it) sticky at the
 *  left, each after the pinned ones before it; waits until the table is on the page, and
 *  places them again whenever a pinned column's width changes (the table narrowed, a row
 *  arrived). */
export function stickPinned(table) {
  if (!table.isConnected) { requestAnimationFrame(() => stickPinned(table)); return; }
  const head = table.tHead.rows[table.tHead.rows.length - 1];
  const pinned = [...head.cells].filter((th) => th.classList.contains("pinned"));
  const observer = new ResizeObserver(() => {
    if (table.isConnected) place(table, head, pinned); else observer.disconnect();
  });
  pinned.forEach((th) => observer.observe(th));
  place(table, head, pinned);
}

function place(table, head, pinned) {
  const lefts = [];
  let left = 0;
  for (const th of pinned) {
    lefts.push([th.cellIndex, left]);
    left += th.getBoundingClientRect().width;
  }
  const last = lefts.length ? lefts[lefts.length - 1][0] : -1;
  for (const row of [head, ...(table.tBodies[0] ? table.tBodies[0].rows : [])]) {
    for (const [index, at] of lefts) {
      const cell = row.cells[index];
      if (!cell) continue;
      cell.classList.add("pinned");
      cell.classList.toggle("pinned-last", index === last);
      cell.style.left = `${at}px`;
    }
  }
}
