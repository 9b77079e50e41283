"""Every shipped workflow in a real ComfyUI, in a real browser, in both node renderers.

    .venv-comfyui/0.33.0/bin/python tools/browser_check.py            # load + run + Cancel, screenshots to docs/
    .venv-comfyui/0.33.0/bin/python tools/browser_check.py --no-run   # load every workflow only (about a minute)

Starts ComfyUI (default ../shared/comfyui/0.33.0, via ../shared/tools/comfy_harness.py) with this pack and a tiny
random-weight Janus model, opens it in headless Chromium (Python playwright driving Debian's /usr/bin/chromium),
and for the classic LiteGraph canvas and for "Nodes 2.0" (Vue nodes, setting Comfy.VueNodes.Enabled):
  * loads each workflows/*.json and fails on a node type the server does not know, a "missing nodes" dialog,
    a page error or console error coming from this pack's web/js, or an extension that did not load;
  * with --run (default), points the loader at the tiny model, presses Run and waits for the end; fails unless
    the run succeeds, a Janus sampler node showed a live preview while sampling, and each Understand / Score
    node shows its answer exactly once (on its labelled widget, no second copy from the frontend);
  * runs text_to_image again and presses Cancel during sampling: the sampler node must be left with no step
    label and no preview;
  * saves a screenshot per workflow and renderer (docs/<name>.png for Nodes 2.0, docs/<name>_classic.png).
Needs: pip install playwright (its own browser downloads are not used); apt-get install chromium.
Exit status 0 only when every check passed; the findings are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("JANUS_SHARED", ROOT.parent / "shared"))
RENDERERS = {"classic": False, "vue": True}  # value of Comfy.VueNodes.Enabled
SAMPLERS = ["JanusGenerate", "JanusRegenerateMasked"]
ANSWERS = ["JanusUnderstand", "JanusScore"]
TINY = "Janus-Tiny"
SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Workflow.ShowMissingNodesWarning": True,
            "Comfy.Workflow.ShowMissingModelsWarning": False, "Comfy.UseNewMenu": "Top",
            "Comfy.Minimap.Visible": False, "Comfy.Workflow.WorkflowTabsPosition": "Sidebar"}

# Page-side helpers (installed once per page): events seen, node lookup, what each node shows.
PAGE_HELPERS = """() => {
  window.janusCheck = { events: [], previewed: [] };
  const api = window.comfyAPI.api.api;
  for (const t of ["execution_start", "execution_success", "execution_error", "execution_interrupted"])
    api.addEventListener(t, ({ detail }) => window.janusCheck.events.push({ type: t, detail }));
  // Nodes seen showing a live preview (in the preview store and drawn on the node), sampled every 20 ms in the
  // page: a run on a tiny model can start and end between two polls from here.
  setInterval(() => {
    const app = window.comfyAPI.app.app;
    for (const n of app.canvas?.graph?.nodes || []) {
      if (!(app.nodePreviewImages?.[String(n.id)] || []).length) continue;
      const el = document.querySelector(`[data-node-id="${n.id}"]`);
      const drawn = el ? el.querySelectorAll("img").length : (n.imgs || []).length;
      if (drawn && !window.janusCheck.previewed.includes(n.id)) window.janusCheck.previewed.push(n.id);
    }
  }, 20);
}"""

NODE_STATE = """([types]) => {
  const app = window.comfyAPI.app.app;
  return app.canvas.graph.nodes.filter((n) => types.includes(n.type)).map((n) => {
    const el = document.querySelector(`[data-node-id="${n.id}"]`);
    const loc = String(n.id);
    const texts = (n.widgets || []).filter((w) => typeof w.value === "string").map((w) => ({ name: w.name,
        label: w.label || null, value: w.value }));
    return { id: n.id, type: n.type, step: n.janusStep || "",
      store_previews: (app.nodePreviewImages?.[loc] || []).length,
      imgs: (n.imgs || []).length,
      dom_imgs: el ? el.querySelectorAll("img").length : null,
      dom_text: el ? el.innerText : null,
      dom_textareas: el ? Array.from(el.querySelectorAll("textarea")).map((t) => t.value) : null,
      texts };
  });
}"""


def log(msg):
    print(f"[browser_check {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def prepare_assets(tmp: Path) -> tuple[Path, Path]:
    """models/janus/Janus-Tiny (random weights, official layout) and the example.png the workflows load."""
    sys.path.insert(0, str(ROOT))
    from PIL import Image, ImageDraw

    from janus_runtime.tiny import make_tiny
    models = tmp / "models"
    make_tiny(models / "janus" / TINY)
    image = tmp / "example.png"
    picture = Image.new("RGB", (384, 384), (70, 130, 180))
    draw = ImageDraw.Draw(picture)
    draw.ellipse((100, 100, 280, 280), fill=(240, 200, 60))
    draw.rectangle((0, 300, 384, 384), fill=(60, 120, 60))
    picture.save(image)
    return models, image


class Page:
    """One browser page on the server, with the errors it raised."""

    def __init__(self, browser, url, pack_url):
        self.page = browser.new_page(viewport={"width": 1600, "height": 1000})
        self.pack_url = pack_url
        self.errors, self.console = [], []
        self.page.on("pageerror", lambda e: self.errors.append(f"{e.message}\n{e.stack or ''}"))
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.goto(url, wait_until="load", timeout=120_000)
        self.page.wait_for_function("() => window.comfyAPI?.app?.app?.graph && window.comfyAPI.app.app.canvas",
                                    timeout=120_000, polling=250)
        # node definitions register after the canvas exists: wait for core's (ours are checked per workflow)
        self.page.wait_for_function("() => ['LoadImage', 'Note'].every((t) => window.LiteGraph?.registered_node_types?.[t])",
                                    timeout=120_000, polling=250)
        self.page.wait_for_timeout(1500)
        self.page.evaluate(PAGE_HELPERS)

    def eval(self, js, arg=None):
        return self.page.evaluate(js, arg)

    def pack_errors(self):
        """Page errors and console errors that come from this pack's JS."""
        found = [e for e in self.errors if self.pack_url in e or "janus" in e.lower()]
        found += [c for c in self.console if c.startswith("error") and (self.pack_url in c or "janus" in c.lower())]
        found += [c for c in self.console if "Error loading extension" in c]
        return found


def load_workflow(page: Page, wf: dict, renderer: str) -> dict:
    page.eval("async (on) => { await window.comfyAPI.app.app.extensionManager.setting.set('Comfy.VueNodes.Enabled', on); }",
              RENDERERS[renderer])
    page.eval("async (wf) => { await window.comfyAPI.app.app.loadGraphData(wf); }", wf)
    # the workflow opens in a new tab: wait until the canvas shows its nodes
    page.page.wait_for_function("""([ids]) => { const g = window.comfyAPI.app.app.canvas.graph;
        return g && g.nodes.length === ids.length && ids.every((id) => g.getNodeById(id)); }""",
                                arg=[[n["id"] for n in wf["nodes"]]], timeout=30_000, polling=200)
    page.page.wait_for_timeout(800)
    return page.eval("""([tiny]) => {
      const app = window.comfyAPI.app.app;
      const registered = window.LiteGraph.registered_node_types;
      for (const n of app.canvas.graph.nodes)
        if (n.type === "JanusModelLoader") { const w = n.widgets?.find((w) => w.name === "model"); if (w) { w.value = tiny; w.callback?.(tiny); } }
      const missing = [...new Set(app.canvas.graph.nodes.filter((n) => !registered[n.type]).map((n) => n.type))];
      const dialog = Array.from(document.querySelectorAll('.comfy-missing-nodes [role=option]')).map((li) => li.innerText);
      return { missing, dialog, extensions: app.extensions.map((e) => e.name).filter((n) => n.startsWith("janus.")) };
    }""", [TINY])


LAYOUT = """() => {
  // On-screen layout in canvas units: node boxes (title included) as the renderer sized them, group boxes.
  const app = window.comfyAPI.app.app;
  const g = app.canvas.graph;
  const box = (r) => [r[0], r[1], r[2], r[3]];
  const nodes = g.nodes.map((n) => ({ id: n.id, title: n.title, box: box(n.boundingRect) }));
  const groups = g.groups.map((gr) => ({ title: gr.title, box: box(gr._bounding ?? gr.boundingRect),
                                         title_height: gr.titleHeight ?? 40 }));
  return { scale: app.canvas.ds.scale, nodes, groups };
}"""
MIN_SCALE = 0.6  # fit-to-view zoom below which node text is too small to read in a 1600 x 1000 window


def layout_problems(page: Page) -> tuple[list, float]:
    """Nodes that overlap each other or a group's title row, nodes that stick out of the group they start in."""
    lay = page.eval(LAYOUT)
    inter = lambda a, b: a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]
    out = []
    nodes = lay["nodes"]
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            if inter(a["box"], b["box"]):
                out.append(f"nodes overlap: {a['title']!r} and {b['title']!r}")
        for gr in lay["groups"]:
            x, y, w, h = gr["box"]
            if inter(a["box"], [x, y, w, gr["title_height"]]):
                out.append(f"{a['title']!r} covers the title of group {gr['title']!r}")
            ax, ay, aw, ah = a["box"]
            if x <= ax < x + w and y <= ay < y + h and (ax + aw > x + w or ay + ah > y + h):
                out.append(f"{a['title']!r} sticks out of group {gr['title']!r}")
    if lay["scale"] < MIN_SCALE:
        out.append(f"fit-to-view zoom {lay['scale']:.0%} is below {MIN_SCALE:.0%}: too small to read")
    return out, lay["scale"]


def fit_view(page: Page):
    page.eval("async () => { await window.comfyAPI.app.app.extensionManager.command.execute('Comfy.Canvas.FitView'); }")
    page.page.wait_for_timeout(700)


def fresh_seeds(page: Page):
    """Seeds no earlier run used, so that nothing comes from ComfyUI's cache (the same workflow loaded again in
    the other renderer would otherwise repeat the first run's prompt and execute nothing)."""
    page.eval("""([types]) => { for (const n of window.comfyAPI.app.app.canvas.graph.nodes) if (types.includes(n.type)) {
        const w = n.widgets.find((w) => w.name === "seed"); if (w) w.value = 1 + Math.floor(Math.random() * 1e9); } }""",
              [SAMPLERS])


def queue(page: Page):
    page.eval("() => { window.janusCheck.events = []; window.janusCheck.previewed = []; }")
    page.page.locator('[data-testid="queue-button"]').first.click()


def wait_end(page: Page, timeout_s: float, watch=None):
    """Poll until the run ends; ``watch()`` is called at each poll (e.g. to catch a preview)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if watch:
            watch()
        ends = page.eval("() => window.janusCheck.events.filter((e) => e.type !== 'execution_start')")
        if ends:
            return ends[-1]["type"], ends[-1]["detail"], time.monotonic() - t0
        page.page.wait_for_timeout(400)
    return "timeout", None, time.monotonic() - t0


def run_workflow(page: Page, name: str, timeout_s: float) -> dict:
    res = {"failures": []}
    saw_preview = {}

    def watch():
        for node in page.eval(NODE_STATE, [SAMPLERS]):
            shown = node["dom_imgs"] if node["dom_imgs"] is not None else node["imgs"]
            if shown and node["store_previews"]:
                saw_preview[node["id"]] = True
    fresh_seeds(page)
    queue(page)
    status, detail, seconds = wait_end(page, timeout_s, watch)
    try:  # the queue panel catches up with the end of the run
        page.page.wait_for_function("() => !/\\b[1-9][0-9]* active\\b/.test(document.body.innerText)", timeout=15_000)
    except Exception:
        pass
    page.page.wait_for_timeout(800)
    res.update(status=status, seconds=round(seconds, 1))
    if status != "execution_success":
        res["failures"].append(f"run ended with {status}: {json.dumps(detail)[:600]}")
    samplers = page.eval(NODE_STATE, [SAMPLERS])
    active = [n for n in samplers if n["id"] in saw_preview]
    for node_id in page.eval("() => window.janusCheck.previewed"):
        saw_preview[node_id] = True
    res["samplers_with_preview"] = sorted(saw_preview)
    if samplers and not active:
        res["failures"].append("no live preview seen on a Janus sampler node during sampling")
    for node in samplers:
        if node["step"]:
            res["failures"].append(f"node {node['id']} still shows step label {node['step']!r} after the run")
    for node in page.eval(NODE_STATE, [ANSWERS]):
        answer = [t for t in node["texts"] if t["name"] == "janus_answer"]
        if not answer or not answer[0]["value"].strip():
            res["failures"].append(f"{node['type']} {node['id']}: no answer on the node")
            continue
        text = answer[0]["value"].strip()
        copies = [t["name"] for t in node["texts"] if t["value"].strip() and t["value"].strip() in text
                  and t["name"] not in ("question", "system_prompt", "janus_answer")]
        if copies or any(t["name"] == "$$node-text-preview" for t in node["texts"]):
            res["failures"].append(f"{node['type']} {node['id']}: answer shown twice ({copies})")
        if node["dom_text"] is not None:  # Nodes 2.0: what is on screen
            shown = node["dom_text"] + "\n" + "\n".join(node["dom_textareas"] or [])
            if shown.count(text) != 1:
                res["failures"].append(f"{node['type']} {node['id']}: answer text on screen {shown.count(text)} times")
        if not answer[0]["label"]:
            res["failures"].append(f"{node['type']} {node['id']}: answer widget has no label")
        res.setdefault("answers", {})[node["id"]] = text[:120]
    return res


def cancel_check(page: Page, timeout_s: float) -> dict:
    """Run, press Cancel once the preview shows, and check that the sampler node is left clean."""
    res = {"failures": []}
    fresh_seeds(page)
    queue(page)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        nodes = page.eval(NODE_STATE, [SAMPLERS])
        if any(n["store_previews"] and n["step"] for n in nodes):
            break
        if page.eval("() => window.janusCheck.events.some((e) => e.type !== 'execution_start')"):
            res["failures"].append("the run ended before a preview showed")
            break
        page.page.wait_for_timeout(300)
    else:
        res["failures"].append("no preview before Cancel")
    page.eval("async () => { await window.comfyAPI.app.app.extensionManager.command.execute('Comfy.Interrupt'); }")
    status, _, _ = wait_end(page, 120)
    page.page.wait_for_timeout(1000)
    res["status"] = status
    if status != "execution_interrupted":
        res["failures"].append(f"Cancel ended with {status}")
    for node in page.eval(NODE_STATE, [SAMPLERS]):
        left = {k: node[k] for k in ("step", "store_previews", "imgs", "dom_imgs") if node[k]}
        if left:
            res["failures"].append(f"node {node['id']} after Cancel still shows {left}")
    return res


GRAPH_ON_SCREEN = """() => {
  const app = window.comfyAPI.app.app;
  const g = app.canvas.graph;
  const boxes = [...g.nodes.map((n) => n.boundingRect), ...g.groups.map((gr) => gr._bounding ?? gr.boundingRect)];
  const a = app.canvasPosToClientPos([Math.min(...boxes.map((b) => b[0])), Math.min(...boxes.map((b) => b[1]))]);
  const b = app.canvasPosToClientPos([Math.max(...boxes.map((b) => b[0] + b[2])), Math.max(...boxes.map((b) => b[1] + b[3]))]);
  return [a[0], a[1], b[0], b[1]];
}"""


def write_thumbnail(shot: Path, box, out: Path):
    """The workflow's part of a screenshot, at most 480 px wide: the template browser's card image."""
    from PIL import Image
    with Image.open(shot) as im:
        x0, y0, x1, y1 = box
        graph = im.convert("RGB").crop((max(0, int(x0) - 8), max(0, int(y0) - 8),
                                        min(im.width, int(x1) + 8), min(im.height, int(y1) + 8)))
        graph.thumbnail((480, 480))
        graph.save(out, quality=85)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfy", default=str(SHARED / "comfyui" / "0.33.0"), help="ComfyUI tree (has main.py)")
    ap.add_argument("--python", default=sys.executable, help="python that runs ComfyUI (default: this one)")
    ap.add_argument("--harness", default=str(SHARED / "tools" / "comfy_harness.py"))
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--renderers", default="vue,classic", help="comma list of vue (Nodes 2.0), classic")
    ap.add_argument("--report", default="", help="also write the JSON report here, after each workflow")
    ap.add_argument("--workflows", default="", help="comma list of workflow names (default: all)")
    ap.add_argument("--no-run", dest="run", action="store_false", help="only load the workflows")
    ap.add_argument("--no-cancel", dest="cancel", action="store_false", help="skip the Cancel check")
    ap.add_argument("--shots", default=str(ROOT / "docs"), help="screenshot folder ('' for none)")
    ap.add_argument("--thumbnails", default="", help="also write <name>.jpg template thumbnails (Nodes 2.0 view) here")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per workflow run")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # still stop the server (finally below)

    sys.path.insert(0, str(Path(args.harness).parent))
    from comfy_harness import ComfyServer
    from playwright.sync_api import sync_playwright

    names = [n for n in args.workflows.split(",") if n]
    workflows = sorted(p for p in (ROOT / "workflows").glob("*.json") if not names or p.stem in names)
    renderers = [r for r in args.renderers.split(",") if r]
    tmp = Path(tempfile.mkdtemp(prefix="janus-browser-check-"))
    report = {"comfy": args.comfy, "results": {}, "failures": []}
    server = None
    try:
        models, image = prepare_assets(tmp)
        server = ComfyServer(args.comfy, [str(ROOT)], args.python, base=str(tmp / "base"), ui_settings=SETTINGS,
                             inputs=[str(image)], models_dir=str(models), log_path=str(tmp / "server.log"))
        server.prepare()
        dataset = Path(server.base) / "input" / "dataset"  # what caption_folder captions
        dataset.mkdir()
        for k in range(2):
            shutil.copy(image, dataset / f"example_{k}.png")
        server.start()
        log(f"ComfyUI up after {server.wait_ready(300):.0f}s on {server.url}")
        pack_url = f"/extensions/{server.link_names[0]}/"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"])
            page = Page(browser, server.url + "/", pack_url)
            report["frontend"] = page.eval("() => window.__COMFYUI_FRONTEND_VERSION__ || null")
            for renderer in renderers:
                for path in workflows:
                    key = f"{path.stem}/{renderer}"
                    log(key)
                    res = load_workflow(page, json.loads(path.read_text()), renderer)
                    fails = []
                    if res["missing"] or res["dialog"]:
                        fails.append(f"missing node types {res['missing'] or res['dialog']}")
                    if len(res["extensions"]) < 3:
                        fails.append(f"Janus extensions not all loaded: {res['extensions']}")
                    fit_view(page)
                    problems, res["zoom"] = layout_problems(page)
                    fails += [f"as loaded: {p}" for p in problems]
                    if args.run:
                        run = run_workflow(page, path.stem, args.timeout)
                        fails += run.pop("failures")
                        res["run"] = run
                        fit_view(page)
                        problems, _ = layout_problems(page)
                        fails += [f"after the run: {p}" for p in problems]
                    fails += page.pack_errors()
                    page.errors.clear()
                    page.console.clear()
                    if args.shots:
                        shot = Path(args.shots) / (path.stem + ("" if renderer == "vue" else "_classic") + ".png")
                        shot.parent.mkdir(parents=True, exist_ok=True)
                        page.page.screenshot(path=str(shot))
                        res["screenshot"] = str(shot)
                        if args.thumbnails and renderer == "vue":
                            write_thumbnail(shot, page.eval(GRAPH_ON_SCREEN), Path(args.thumbnails) / f"{path.stem}.jpg")
                    res["failures"] = fails
                    report["results"][key] = res
                    report["failures"] += [f"{key}: {f}" for f in fails]
                    log(f"{key}: {'ok' if not fails else fails} {res.get('run', {}).get('seconds', '')}")
                    if args.report:
                        Path(args.report).write_text(json.dumps(report, indent=1))
                if args.run and args.cancel:
                    log(f"cancel/{renderer}")
                    load_workflow(page, json.loads((ROOT / "workflows" / "text_to_image.json").read_text()), renderer)
                    fit_view(page)
                    res = cancel_check(page, args.timeout)
                    report["results"][f"cancel/{renderer}"] = res
                    report["failures"] += [f"cancel/{renderer}: {f}" for f in res["failures"]]
            browser.close()
    except Exception as e:  # a step that could not even be checked
        report["failures"].append(f"{type(e).__name__}: {e}")
    finally:
        if server is not None:
            server.stop()
            log_text = Path(server.log_path).read_text(errors="replace") if Path(server.log_path).exists() else ""
            if report["failures"]:
                report["server_log_tail"] = log_text.splitlines()[-60:]
            if "IMPORT FAILED" in log_text:
                report["failures"].append("the pack failed to import (server log)")
        shutil.rmtree(tmp, ignore_errors=True)
    report["ok"] = not report["failures"]
    print(json.dumps(report, indent=1))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
