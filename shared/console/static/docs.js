// Swagger UI over keyway's OpenAPI document (no inline script: the page's CSP forbids it).
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var el = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({ url: el.getAttribute("data-url"), domNode: el, deepLinking: false });
});
