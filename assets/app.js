() => {
  // Keyboard for the two review views; each view has its own keys, active only while it shows.
  // Review critiques: j/k or arrows move between dimensions; a/r/c accept, reject or correct the
  //   current one; digits 1-4 set its corrected score and +/- step it by 0.25 (both mark it
  //   "correct"); m goes to its comment; Enter submits; s skips, b goes back, u undoes the last submit.
  // Compare A/B: 1 or Left picks the left image, 2 or Right the right one, 3 or t a tie; s skips,
  //   u undoes the last pick. ? shows the help overlay in both, Esc closes it.
  // Letter and digit keys belong to the field that has focus: they never fire while focus is in a
  // text box, a number box or a verdict radio (typing "2" into a comment changes nothing else);
  // Esc leaves the field, and the keys act again.
  // Enter submits the review from anywhere in the Review view, fields included; Shift+Enter, and
  // Enter on a button, keep their usual meaning.
  let current = 0;
  const visible = (el) => el && el.offsetParent !== null;
  const reviewView = () => document.querySelector("#annotate-panel");
  const compareView = () => document.querySelector("#compare-panel");
  const help = () => document.querySelector("#rr-help");
  const rows = () => [...document.querySelectorAll(".rr-dim")].filter(visible);
  const mark = () => rows().forEach((row, i) => row.classList.toggle("rr-current", i === current));
  const click = (selector) => { const el = document.querySelector(selector); if (visible(el)) { el.click(); return true; } return false; };
  const inField = (el) => !!el && (el.isContentEditable || ["input", "textarea", "select"].includes((el.tagName || "").toLowerCase()));
  const plainButton = (el) => !!el && el.getAttribute("role") !== "tab"
    && ((el.tagName || "").toLowerCase() === "button" || el.getAttribute("role") === "button");
  const row = () => { const all = rows(); if (!all.length) return null; current = Math.max(0, Math.min(current, all.length - 1)); return all[current]; };
  const move = (step) => { const all = rows(); if (!all.length) return; current = Math.max(0, Math.min(current + step, all.length - 1)); mark(); all[current].scrollIntoView({ block: "nearest" }); };
  const verdict = (value) => { const r = row(); const input = r && r.querySelector(`input[type=radio][value="${value}"]`); if (input && !input.checked) input.click(); };
  const choose = (value) => { verdict(value); move(1); };
  const scoreBox = () => { const r = row(); return r && r.querySelector("input[type=number]"); };
  const setScore = (value) => {
    const box = scoreBox();
    if (!box) return;
    verdict("correct");
    box.value = String(Math.max(1, Math.min(4, Math.round(value * 4) / 4)));
    box.dispatchEvent(new Event("input", { bubbles: true }));
    box.dispatchEvent(new Event("change", { bubbles: true }));
    mark();
  };
  const stepScore = (delta) => {
    const box = scoreBox();
    if (!box) return;
    const start = box.value !== "" ? Number(box.value) : Number((box.placeholder || "").replace(/[^0-9.]/g, "") || 2.5);
    setScore(start + delta);
  };
  const focusIn = (selector) => { const r = row(); const el = r && r.querySelector(selector); if (el) { el.focus(); if (el.select) el.select(); } };
  const submit = () => {
    // Leave the field first so its last edit (a number typed, a comment) reaches the form's state.
    if (inField(document.activeElement)) document.activeElement.blur();
    setTimeout(() => { if (click("#annotate-submit")) { current = 0; setTimeout(mark, 300); } }, 50);
  };
  const restart = (selector) => () => { current = 0; click(selector); setTimeout(mark, 300); };
  window.rrToggleHelp = (show) => {
    const box = help();
    if (box) box.hidden = show === undefined ? !box.hidden : !show;
  };
  const reviewKeys = {
    j: () => move(1), ArrowDown: () => move(1), k: () => move(-1), ArrowUp: () => move(-1),
    a: () => choose("accept"), r: () => choose("reject"),
    c: () => { verdict("correct"); focusIn("input[type=number]"); },
    "1": () => setScore(1), "2": () => setScore(2), "3": () => setScore(3), "4": () => setScore(4),
    "+": () => stepScore(0.25), "=": () => stepScore(0.25), "-": () => stepScore(-0.25),
    m: () => focusIn("textarea, input[type=text]"),
    s: restart("#annotate-skip"), b: restart("#annotate-back"), u: restart("#annotate-undo"),
  };
  const compareKeys = {
    "1": () => click("#pick-left"), ArrowLeft: () => click("#pick-left"),
    "2": () => click("#pick-right"), ArrowRight: () => click("#pick-right"),
    "3": () => click("#pick-tie"), t: () => click("#pick-tie"),
    s: () => click("#pair-skip"), u: () => click("#pair-undo"),
  };
  document.addEventListener("keydown", (event) => {
    const review = visible(reviewView()), compare = visible(compareView());
    if (!review && !compare) return;
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (event.key === "Escape" && help() && !help().hidden) { window.rrToggleHelp(false); return; }
    if (review && event.key === "Enter") {
      if (event.shiftKey || plainButton(target)) return;
      event.preventDefault();
      event.stopPropagation();
      submit();
      return;
    }
    if (inField(target)) {
      // Esc leaves the field (a typed score, a comment, a verdict clicked with the mouse) and makes
      // its dimension the current one, so the keys act again without reaching for the mouse.
      if (event.key === "Escape") {
        const at = rows().findIndex((r) => r.contains(target));
        if (at >= 0) current = at;
        target.blur();
        mark();
      }
      return;
    }
    if (event.key === "?") { event.preventDefault(); window.rrToggleHelp(); return; }
    if (event.shiftKey && event.key !== "+") return;
    const action = (review ? reviewKeys : compareKeys)[event.key];
    if (action) { event.preventDefault(); action(); }
  }, true);
  new MutationObserver(() => { if (rows().length && !rows().some((r) => r.classList.contains("rr-current"))) { current = 0; mark(); } })
    .observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ["style", "class"] });
  // Create and Edit prompts: Enter runs (the same button a click would press, so the same checks run
  // first); Shift+Enter adds a new line. Gradio's own textarea handler (on keypress, where Shift+Enter
  // submits) is kept out of both.
  const runButtons = { "create-prompt": "#create-run", "edit-instruction": "#edit-run" };
  const promptBox = (event) => {
    if (event.key !== "Enter" || event.isComposing || event.ctrlKey || event.metaKey || event.altKey) return null;
    const box = event.target && event.target.closest ? event.target.closest("#create-prompt, #edit-instruction") : null;
    return box && (event.target.tagName || "").toLowerCase() === "textarea" ? box : null;
  };
  document.addEventListener("keypress", (event) => { if (promptBox(event)) event.stopPropagation(); }, true);
  document.addEventListener("keydown", (event) => {
    const box = promptBox(event);
    if (!box) return;
    event.stopPropagation();
    if (event.shiftKey) return;  // the browser inserts the new line
    event.preventDefault();
    event.target.dispatchEvent(new Event("input", { bubbles: true }));
    event.target.blur();
    setTimeout(() => click(runButtons[box.id]), 50);
  }, true);
  // Create and Edit results: when a run starts (its status line first changes after the click, which
  // happens only once the run's checks have passed), bring the results into view once: at 1280x900
  // the form fills the first screen, so the image would land below the fold. After that the page
  // stays wherever the user scrolls it while the rounds stream in.
  const resultsOf = { "create-run": "create", "create-more": "create", "edit-run": "edit", "edit-more": "edit" };
  const statusLine = (prefix) => document.querySelector(`#${prefix}-status`);
  let awaiting = null;
  document.addEventListener("click", (event) => {
    const button = event.target && event.target.closest ? event.target.closest("#create-run, #create-more, #edit-run, #edit-more") : null;
    if (!button) return;
    const prefix = resultsOf[button.id];
    const status = statusLine(prefix);
    awaiting = { prefix, text: status ? status.textContent : "" };
  }, true);
  new MutationObserver(() => {
    if (!awaiting) return;
    const status = statusLine(awaiting.prefix);
    if (!status || !status.textContent.trim() || status.textContent === awaiting.text) return;
    awaiting = null;
    const results = document.querySelector(`#${status.id.replace("-status", "-image")}`);
    const box = (results || status).getBoundingClientRect();
    if (box.top < 0 || box.bottom > window.innerHeight) status.scrollIntoView({ block: "start", behavior: "smooth" });
  }).observe(document.body, { childList: true, subtree: true, characterData: true });
}
