// Starts Swagger UI over this server's OpenAPI document. A file of its own rather
// than an inline script, so that a Content-Security-Policy of script-src 'self'
// holds. Every option that could reach beyond this server is pinned off.
"use strict";

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  // No top bar: it would let the page load a document from any URL.
  layout: "BaseLayout",
  // Never read options (such as ?url= or ?configUrl=) from the page's query string.
  queryConfigEnabled: false,
  configUrl: null,
  // The default sends the document to validator.swagger.io for a badge.
  validatorUrl: null,
  // A token entered with Authorize lives in memory only, never in localStorage.
  persistAuthorization: false,
  tryItOutEnabled: true,
  deepLinking: true,
  displayRequestDuration: true,
  docExpansion: "list",
  defaultModelsExpandDepth: 1,
});
