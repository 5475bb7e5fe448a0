// The records as JSON text, the way versions before record format 1 stored
// them (storage/record_codec.hpp). Read only by the open-time upgrade
// (store_upgrade.cpp), which rewrites each in the current format: nothing
// else reads or writes this form. Each gives nullopt on a value it cannot
// take whole.
#pragma once

#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "core/sample.hpp"
#include "core/sandbox.hpp"
#include "core/secret.hpp"
#include "core/snapshot.hpp"
#include "core/user_template.hpp"
#include "core/volume.hpp"
#include "core/webhook.hpp"
#include "storage/store.hpp"

namespace sandboxd::legacy {

std::optional<webhook> webhook_from(const nlohmann::json& j);
std::optional<delivery> delivery_from(const nlohmann::json& j);
std::optional<volume> volume_from(const nlohmann::json& j);
std::optional<secret_record> secret_from(const nlohmann::json& j);
std::optional<snapshot_info> snapshot_from(const nlohmann::json& j);
std::optional<sandbox_record> sandbox_from(const nlohmann::json& j);
std::optional<template_build> build_from(const nlohmann::json& j);
std::optional<user_template> template_from(const nlohmann::json& j);
std::optional<build_log_entry> build_log_from(const nlohmann::json& j);
std::optional<store::log_line> log_line_from(const nlohmann::json& j);
std::optional<container_sample> sample_from(const nlohmann::json& j);
std::optional<std::set<std::string>> drained_nodes_from(const nlohmann::json& j);

/// A checkpoint as stored before: its body, and whether `signature` signs it
/// under `secret` (the HMAC was over the body's JSON text; keys sorted, as
/// nlohmann writes them, so the parsed body writes back the same text).
struct legacy_checkpoint {
  store::checkpoint body;
  bool signed_ok = false;
};
std::optional<legacy_checkpoint> checkpoint_from(const nlohmann::json& j,
                                                 const std::string& secret);

} // namespace sandboxd::legacy
