// Accessible tabs (WAI-ARIA pattern): click or arrow keys / Home / End; the URL hash names the open view.

export function createTabs(tablist, onChange) {
  const tabs = Array.from(tablist.querySelectorAll('[role="tab"]'));
  const byView = new Map(tabs.map((tab) => [tab.dataset.view, tab]));

  function select(tab, { focus = false, updateHash = true } = {}) {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
    }
    if (focus) tab.focus();
    if (updateHash) {
      const url = tab.dataset.view === "search" ? location.pathname + location.search : `#${tab.dataset.view}`;
      history.replaceState(null, "", url);
    }
    onChange(tab.dataset.view);
  }

  function onKeydown(event) {
    const index = tabs.indexOf(event.target);
    if (index < 0) return;
    const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    select(tabs[(moves[event.key] + tabs.length) % tabs.length], { focus: true });
  }

  tablist.addEventListener("keydown", onKeydown);
  for (const tab of tabs) tab.addEventListener("click", () => select(tab));
  window.addEventListener("hashchange", () => {
    const tab = byView.get(location.hash.slice(1));
    if (tab) select(tab, { updateHash: false });
  });

  return {
    show: (view) => select(byView.get(view) ?? tabs[0]),
    fromHash() {
      const tab = byView.get(location.hash.slice(1));
      if (tab) select(tab, { updateHash: false });
    },
  };
}
