() => {
  // Keyboard shortcuts for the Annotate tab: 1/2/3 pick A/B/tie, a/r accept/reject the current
  // dimension (then move to the next), Enter submits and loads the next critique.
  // Letter and digit keys belong to the field that has focus: they never fire while focus is in a
  // text box, a number box or a verdict radio (typing "2" into a comment must not pick B).
  // Enter submits from anywhere while the Annotate view shows, fields and the tab strip included;
  // Shift+Enter, and Enter on a button (submit, load, the picks, sign-in), keep their usual meaning.
  let current = 0;
  const visible = (el) => el && el.offsetParent !== null;
  const panel = () => document.querySelector("#annotate-panel");
  const rows = () => [...document.querySelectorAll(".rr-dim")].filter(visible);
  const mark = () => rows().forEach((row, i) => row.classList.toggle("rr-current", i === current));
  const click = (selector) => { const el = document.querySelector(selector); if (visible(el)) { el.click(); return true; } return false; };
  const inField = (el) => !!el && (el.isContentEditable || ["input", "textarea", "select"].includes((el.tagName || "").toLowerCase()));
  const plainButton = (el) => !!el && el.getAttribute("role") !== "tab"
    && ((el.tagName || "").toLowerCase() === "button" || el.getAttribute("role") === "button");
  const choose = (verdict) => {
    const all = rows();
    if (!all.length) return;
    current = Math.min(current, all.length - 1);
    const input = all[current].querySelector(`input[type=radio][value="${verdict}"]`);
    if (input) input.click();
    current = Math.min(current + 1, all.length - 1);
    mark();
  };
  const submit = () => {
    // Leave the field first so its last edit (a number typed, a comment) reaches the form's state.
    if (inField(document.activeElement)) document.activeElement.blur();
    setTimeout(() => { if (click("#annotate-submit")) { current = 0; setTimeout(mark, 300); } }, 50);
  };
  const keys = {
    "1": () => click("#pick-a"), "2": () => click("#pick-b"), "3": () => click("#pick-tie"),
    "a": () => choose("accept"), "r": () => choose("reject"),
  };
  document.addEventListener("keydown", (event) => {
    const view = panel();
    if (!visible(view)) return;
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (event.key === "Enter") {
      if (event.shiftKey || plainButton(target)) return;
      event.preventDefault();
      event.stopPropagation();
      submit();
      return;
    }
    if (event.shiftKey || inField(target)) return;
    const action = keys[event.key];
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
}
