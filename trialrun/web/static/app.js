// Keyboard shortcuts on a review item: a = approve, d = deny, n = next item.
// Nothing else: the pages work without JavaScript.
document.addEventListener("keydown", function (event) {
  var t = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable)) return;
  var target = {a: "approve", d: "deny", n: "next"}[event.key];
  var el = target && document.getElementById(target);
  if (!el) return;
  event.preventDefault();
  el.click();
});
