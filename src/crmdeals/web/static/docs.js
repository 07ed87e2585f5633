// Starts Swagger UI on the /docs page (a file, not an inline script, so that the page's
// Content-Security-Policy can allow scripts from this server only).
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis],
    validatorUrl: null, // the online validator would send the document to a third party
  });
});
