#include "actors/interfaces.hpp"

namespace sandboxd {

void add_message_types(caf::actor_system_config& cfg) {
  // add_message_type<T> also announces std::vector<T> (list replies).
  // Builtins (strings, std::vector<std::string>, integers, bool) need no
  // announcement. blocking_job is announced by name too, though it never
  // leaves its node: its inspect refuses to write or read one.
  cfg.add_message_type<event>("sandboxd::event")
    .add_message_type<create_spec>("sandboxd::create_spec")
    .add_message_type<sandbox_record>("sandboxd::sandbox_record")
    .add_message_type<connect_result>("sandboxd::connect_result")
    .add_message_type<container_sample>("sandboxd::container_sample")
    .add_message_type<kill_reason>("sandboxd::kill_reason")
    .add_message_type<webhook>("sandboxd::webhook")
    .add_message_type<registry_stats>("sandboxd::registry_stats")
    .add_message_type<list_query>("sandboxd::list_query")
    .add_message_type<rendered_page>("sandboxd::rendered_page")
    .add_message_type<snapshot_info>("sandboxd::snapshot_info")
    .add_message_type<volume>("sandboxd::volume")
    .add_message_type<volume_mount>("sandboxd::volume_mount")
    .add_message_type<spec_volume>("sandboxd::spec_volume")
    .add_message_type<network_view>("sandboxd::network_view")
    .add_message_type<egress_header>("sandboxd::egress_header")
    .add_message_type<egress_rule>("sandboxd::egress_rule")
    .add_message_type<template_request>("sandboxd::template_request")
    .add_message_type<code_template_request>("sandboxd::code_template_request")
    .add_message_type<template_step>("sandboxd::template_step")
    .add_message_type<template_steps>("sandboxd::template_steps")
    .add_message_type<user_template>("sandboxd::user_template")
    .add_message_type<std::map<std::string, template_usage>>(
      "std::map<std::string,sandboxd::template_usage>")
    .add_message_type<sandbox_actor>("sandboxd::sandbox_actor")
    .add_message_type<container_spec>("sandboxd::container_spec")
    .add_message_type<network_policy>("sandboxd::network_policy")
    .add_message_type<node_capacity>("sandboxd::node_capacity")
    .add_message_type<node_view>("sandboxd::node_view")
    .add_message_type<worker_actor>("sandboxd::worker_actor")
    .add_message_type<cluster_gate_actor>("sandboxd::cluster_gate_actor")
    // Handed to the control node when a worker joins.
    .add_message_type<tunnel_back_actor>("sandboxd::tunnel_back_actor")
    .add_message_type<tunnel_peer_actor>("sandboxd::tunnel_peer_actor")
    // The agent messages of the sandbox actor and its streams.
    .add_message_type<agent_frame>("sandboxd::agent_frame")
    .add_message_type<agent_stream_error>("sandboxd::agent_stream_error")
    .add_message_type<exec_outcome>("sandboxd::exec_outcome")
    .add_message_type<agent_sink_actor>("sandboxd::agent_sink_actor")
    .add_message_type<agent_stream_actor>("sandboxd::agent_stream_actor")
    .add_message_type<blocking_job>("sandboxd::blocking_job");
}

} // namespace sandboxd
