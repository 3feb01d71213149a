// Child runs (a `tympan probe` job's runs, any run logged with parent=) nested under their
// parent in the runs table: the order rows are drawn in, and the parent's toggle.

/** The page's runs in drawing order: each child right after its parent (when the parent is on
 *  the page), with its depth; ``children`` counts a parent's own children on the page. */
export function nestRuns(runs) {
  const onPage = new Set(runs.map((r) => r.id));
  const kids = new Map();
  for (const run of runs) {
    if (run.parent_id && run.parent_id !== run.id && onPage.has(run.parent_id)) {
      if (!kids.has(run.parent_id)) kids.set(run.parent_id, []);
      kids.get(run.parent_id).push(run);
    }
  }
  const out = [];
  const seen = new Set();
  const visit = (run, depth, parent) => {
    if (seen.has(run.id)) return;  // a cycle of parents draws each run once
    seen.add(run.id);
    out.push({ run, depth, parent, children: (kids.get(run.id) || []).length });
    for (const child of kids.get(run.id) || []) visit(child, depth + 1, run.id);
  };
  for (const run of runs) {
    const nested = run.parent_id && run.parent_id !== run.id && onPage.has(run.parent_id);
    if (!nested) visit(run, 0, null);
  }
  for (const run of runs) visit(run, 0, null);  // runs only reachable through a cycle
  return out;
}

/** Whether a nested row is shown: every parent above it is expanded. */
export function shownNested(entry, byId, expanded) {
  for (let p = entry.parent; p; p = byId.get(p)?.parent) if (!expanded.has(p)) return false;
  return true;
}
