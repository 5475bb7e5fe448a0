// http/openapi.yaml as built into the binary: GET /openapi.yaml serves the
// very spec the route table is tested against (tests/unit/routes_test.cpp).
#pragma once

#include <string_view>

namespace sandboxd::http {

std::string_view openapi_spec();

} // namespace sandboxd::http
