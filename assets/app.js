() => {
  // Keyboard shortcuts for the Annotate tab: 1/2/3 pick A/B/tie, a/r accept/reject the current
  // dimension (then move to the next), Enter submits and loads the next critique.
  let current = 0;
  const visible = (el) => el && el.offsetParent !== null;
  const rows = () => [...document.querySelectorAll(".rr-dim")].filter(visible);
  const mark = () => rows().forEach((row, i) => row.classList.toggle("rr-current", i === current));
  const click = (selector) => { const el = document.querySelector(selector); if (visible(el)) { el.click(); return true; } return false; };
  const choose = (verdict) => {
    const all = rows();
    if (!all.length) return;
    current = Math.min(current, all.length - 1);
    const input = all[current].querySelector(`input[type=radio][value="${verdict}"]`);
    if (input) input.click();
    current = Math.min(current + 1, all.length - 1);
    mark();
  };
  document.addEventListener("keydown", (event) => {
    if (!visible(document.querySelector("#annotate-panel"))) return;
    const tag = (event.target.tagName || "").toLowerCase();
    if (tag === "textarea" || (tag === "input" && event.target.type !== "radio")) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const actions = {
      "1": () => click("#pick-a"), "2": () => click("#pick-b"), "3": () => click("#pick-tie"),
      "a": () => choose("accept"), "r": () => choose("reject"),
      "Enter": () => { if (click("#annotate-submit")) { current = 0; setTimeout(mark, 300); } },
    };
    const action = actions[event.key];
    if (action) { event.preventDefault(); action(); }
  });
  new MutationObserver(() => { if (rows().length && !rows().some((r) => r.classList.contains("rr-current"))) { current = 0; mark(); } })
    .observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ["style", "class"] });
}
