// Logged images (run.log_image): each key browsable by step on the run page, and one key and
// step side by side across runs on the compare page.
import { api, apiUrl, enc } from "./api.js";
import { h, fmt, empty } from "./dom.js";
import { commonStepPicker, keyBrowser } from "./step-nav.js";

function imageUrl(runId, imageId) {
  return apiUrl(`runs/${enc(runId)}/images/${enc(imageId)}.png`);
}

function describe(image) {
  const size = `${image.width}×${image.height} ${image.mode}`;
  if (!image.scaled_from) return size;
  const [low, high] = image.scaled_from;
  return `${size} · values ${fmt(low)} … ${fmt(high)} shown black … white`;
}

function figure(runId, image, title = null) {
  return h("figure.logged-image", { dataset: { image: image.image_id, step: image.step } },
    title,
    h("a", { href: imageUrl(runId, image.image_id), target: "_blank", rel: "noopener", title: "Open the PNG" },
      h("img", { src: imageUrl(runId, image.image_id), alt: image.caption || image.key,
        style: { aspectRatio: `${image.width} / ${image.height}` } })),
    h("figcaption", image.caption ? h("span.caption", image.caption) : null, h("span.muted", describe(image))));
}

/** The run page's Images tab. */
export function imagesTab(run) {
  const count = run.images ? run.images.count : 0;
  return { id: "images", label: "Images", count, render: async () => {
    if (!count) return empty("No images were logged (run.log_image).");
    const { images } = await api.get(`runs/${enc(run.id)}/images`);
    return keyBrowser(images, (atStep) => [h("div.image-grid", atStep.map((img) => figure(run.id, img)))]);
  } };
}

/** The compare page's Images tab: the runs' images of one key at one step, side by side. */
export function imagesCompareTab(data, colours) {
  const entries = data.images || [];
  return { id: "images", label: "Images", count: new Set(entries.map((a) => a.key)).size, render: () => {
    if (!entries.length) return empty("These runs have no image key and step in common.");
    const cache = new Map();
    const listOf = (runId, key) => {
      const id = `${runId}|${key}`;
      if (!cache.has(id)) cache.set(id, api.get(`runs/${enc(runId)}/images`, { key }).then((r) => r.images));
      return cache.get(id);
    };
    const holder = h("div.image-grid.compare");
    const picker = commonStepPicker(entries, "image", async (entry) => {
      const lists = await Promise.all(data.runs.map((r) => listOf(r.id, entry.key)));
      holder.replaceChildren(...data.runs.map((r, i) => {
        const title = h("div.image-run", h("i.swatch", { style: { background: colours[i] } }), r.name);
        const image = lists[i].find((img) => img.image_id === entry.samples[i]);
        return image ? figure(r.id, image, title)
          : h("figure.logged-image.missing", title, h("p.muted", `No ${entry.key} at step ${fmt(entry.step)}`));
      }));
    });
    picker.show();
    return h("div.media-compare", picker.root, holder);
  } };
}
