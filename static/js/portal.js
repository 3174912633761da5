// Progressive enhancement only: every page works without this file.
// Copy buttons: <button data-copy="#element-id">Copy</button> copies the element's text.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var source = document.querySelector(button.getAttribute("data-copy"));
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(function () {
    var label = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = label; }, 1500);
  });
});
// Confirm destructive actions: <form data-confirm="Revoke this key?">.
document.addEventListener("submit", function (event) {
  var form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
});
// The tenant switcher submits on change; its button stays for readers without JavaScript.
document.addEventListener("change", function (event) {
  if (event.target.matches(".switcher select")) event.target.form.submit();
});
// Polled regions (hx-trigger="every …, leo:visible" and data-pause-when-hidden): no request while
// the tab is hidden, and one at once when it shows again. Done here rather than with an hx-trigger
// filter because htmx compiles filters with Function(), which our CSP (no 'unsafe-eval') forbids.
document.addEventListener("htmx:beforeRequest", function (event) {
  if (document.hidden && event.detail.elt.closest("[data-pause-when-hidden]")) event.preventDefault();
});
document.addEventListener("visibilitychange", function () {
  if (document.hidden || !window.htmx) return;
  document.querySelectorAll("[data-pause-when-hidden]").forEach(function (el) { window.htmx.trigger(el, "leo:visible"); });
});
