// The connect result page: in a popup, tell the opener what happened, then close.
// Target origin: the configured console origin the server chose (never "*").
(function () {
  "use strict";
  var el = document.getElementById("outcome");
  if (!el || !window.opener || window.opener === window) { return; }
  var target = el.getAttribute("data-target-origin");
  if (!target || target === "*") { return; }
  window.opener.postMessage(JSON.parse(el.getAttribute("data-result")), target);
  window.close();
}());
