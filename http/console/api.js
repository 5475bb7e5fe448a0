// The API reference: Swagger UI over the spec the server is tested against
// (GET /openapi.yaml). "Try it out" goes to this server (whatever the spec's
// example server says) with the key the console is signed in with.
'use strict'

const key = sessionStorage.getItem('sandboxd-key')
const ui = SwaggerUIBundle({
  url: '/openapi.yaml',
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: 'none', // no badge from swagger.io carrying this server's spec URL
  requestInterceptor: (req) => {
    const u = new URL(req.url, location.origin)
    if (u.origin !== location.origin) req.url = location.origin + u.pathname + u.search
    return req
  },
  onComplete: () => { if (key) ui.preauthorizeApiKey('ApiKeyAuth', key) },
})
window.sandboxdReference = ui // for the console's tests
