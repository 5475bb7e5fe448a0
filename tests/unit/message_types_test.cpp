// Every actor payload survives CAF 0.17's binary serializer field for field,
// and the announced ones survive inside a message: what the middleman needs to
// carry them between nodes. Every field is filled with a non-default value
// and compared, and each type's field count is checked against the fields its
// inspect names, so a forgotten field (now or when one is added) fails here.
// Stored records are written through the same inspect (storage/record_codec),
// so the types only the store holds are checked here too.
#include <gtest/gtest.h>

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "actors/interfaces.hpp"
#include "core/secret.hpp"
#include "storage/store.hpp"

namespace sandboxd {

// Each type's fields in declaration order, for comparison. Static (this file
// only), in namespace sandboxd so that the operator== below reaches nested
// values (optionals, vectors, tuple elements) by ADL.
static auto fields(const execution_info& x) {
  return std::tie(x.started_at_ms, x.vcpu_count, x.memory_mb, x.execution_time_ms);
}
static auto fields(const event& x) {
  return std::tie(x.seq, x.id, x.type, x.timestamp_ms, x.sandbox_id, x.template_id,
                  x.team_id, x.execution_id, x.metadata, x.end_at_ms, x.env_vars, x.alias,
                  x.cpu_count, x.memory_mb, x.disk_size_mb, x.timeout_s, x.idle_timeout_s,
                  x.max_end_ms, x.execution, x.reason, x.ext, x.prev_hash, x.hash, x.format);
}
static auto fields(const network_view& x) {
  return std::tie(x.internet, x.internet_set, x.allow_out, x.deny_out, x.public_traffic,
                  x.mask_request_host, x.rules);
}
static auto fields(const volume& x) {
  return std::tie(x.id, x.org_id, x.name, x.created_ms, x.size_mb);
}
static auto fields(const volume_mount& x) {
  return std::tie(x.name, x.path, x.volume_id, x.size_mb);
}
static auto fields(const spec_volume& x) { return std::tie(x.vol, x.path); }
static auto fields(const create_spec::agent_launch& x) {
  return std::tie(x.name, x.model, x.task, x.command, x.key_env, x.key, x.cancel_grace_s);
}
static auto fields(const create_spec& x) {
  return std::tie(x.org_id, x.template_id, x.timeout_s, x.metadata, x.env_vars, x.alias,
                  x.idle_timeout_s, x.max_lifetime_s, x.agent, x.auto_pause,
                  x.auto_pause_memory, x.auto_resume, x.network, x.volumes);
}
static auto fields(const sandbox_record& x) {
  return std::tie(x.id, x.org_id, x.template_id, x.alias, x.metadata, x.env_vars,
                  x.cpu_count, x.memory_mb, x.disk_size_mb, x.timeout_s, x.idle_timeout_s,
                  x.max_end_ms, x.started_at_ms, x.end_at_ms, x.state, x.execution_id,
                  x.execution_started_ms, x.end_reason, x.last_seq, x.ext);
}
static auto fields(const connect_result& x) { return std::tie(x.sandbox, x.resumed); }
static auto fields(const container_sample& x) {
  return std::tie(x.timestamp_ms, x.cpu_count, x.cpu_used_pct, x.mem_used, x.mem_total,
                  x.mem_cache, x.disk_used, x.disk_total);
}
static auto fields(const webhook& x) {
  return std::tie(x.id, x.org_id, x.name, x.url, x.secret, x.events, x.enabled,
                  x.created_ms);
}
static auto fields(const registry_stats& x) {
  return std::tie(x.by_state, x.latency_bounds_s, x.latency_counts, x.latency_sum_s,
                  x.creates, x.create_failures, x.warm, x.ready_disks);
}
static auto fields(const list_query& x) {
  return std::tie(x.org, x.states, x.metadata, x.template_id, x.started_after_ms,
                  x.ascending, x.limit, x.after);
}
static auto fields(const rendered_page& x) {
  return std::tie(x.json, x.more, x.total_running, x.last);
}
static auto fields(const snapshot_info& x) {
  return std::tie(x.id, x.org_id, x.name, x.sandbox_id, x.template_id, x.layers,
                  x.node, x.created_ms, x.hidden);
}
static auto fields(const template_request& x) {
  return std::tie(x.org_id, x.name, x.extends, x.packages, x.env, x.start_cmd,
                  x.cpu_count, x.memory_mb);
}
static auto fields(const template_step& x) {
  return std::tie(x.type, x.args, x.files_hash, x.force);
}
static auto fields(const template_steps& x) {
  return std::tie(x.from_template, x.from_image, x.steps, x.start_cmd, x.ready_cmd, x.force);
}
static auto fields(const code_template_request& x) {
  return std::tie(x.org_id, x.name, x.tags, x.cpu_count, x.memory_mb);
}
static auto fields(const template_build& x) {
  return std::tie(x.id, x.template_id, x.org_id, x.status, x.reason, x.created_ms,
                  x.updated_ms, x.finished_ms, x.parent, x.packages, x.run, x.env,
                  x.start_cmd, x.ready_port, x.cpu_count, x.memory_mb, x.hash, x.code,
                  x.steps, x.snapshot_id, x.failed_step, x.tags, x.default_user,
                  x.default_workdir, x.tag_times, x.asked_cpu, x.asked_memory_mb);
}
static auto fields(const user_template& x) {
  return std::tie(x.id, x.org_id, x.name, x.created_ms, x.updated_ms, x.build_count,
                  x.latest_build, x.latest_status, x.ready);
}
static auto fields(const template_usage& x) { return std::tie(x.count, x.last_ms); }
static auto fields(const network_policy& x) {
  return std::tie(x.internet, x.allow_out, x.deny_out, x.rules, x.org);
}
static auto fields(const egress_header& x) { return std::tie(x.name, x.value); }
static auto fields(const egress_rule& x) { return std::tie(x.host, x.headers); }
static auto fields(const disk_limits& x) { return std::tie(x.bytes, x.inodes); }
static auto fields(const container_spec& x) {
  return std::tie(x.id, x.lower_rootfs, x.template_name, x.layers, x.layers_node, x.cpu_count,
                  x.memory_mb, x.pids_max, x.disk, x.env, x.network, x.volumes);
}
static auto fields(const node_capacity& x) {
  return std::tie(x.node, x.cpus, x.memory_mb, x.available_mb, x.containers, x.templates);
}
static auto fields(const node_view& x) {
  return std::tie(x.capacity, x.local, x.connected, x.draining, x.sandboxes, x.allocated_mb);
}
static auto fields(const agent_frame& x) { return std::tie(x.text); }
static auto fields(const failure& x) { return std::tie(x.status, x.message); }
static auto fields(const delivery_attempt& x) {
  return std::tie(x.id, x.success, x.duration_ms, x.request_url, x.http_status, x.error_class,
                  x.error_message, x.timestamp_ms);
}
static auto fields(const delivery& x) {
  return std::tie(x.webhook_id, x.seq, x.event_id, x.type, x.sandbox_id, x.attempts, x.gave_up);
}
static auto fields(const secret_version& x) { return std::tie(x.version, x.created_ms, x.sealed); }
static auto fields(const secret_record& x) {
  return std::tie(x.id, x.org_id, x.name, x.metadata, x.created_ms, x.updated_ms,
                  x.current_version, x.versions);
}
static auto fields(const build_log_entry& x) {
  return std::tie(x.timestamp_ms, x.level, x.step, x.message);
}
static auto fields(const store::log_line& x) { return std::tie(x.timestamp_ms, x.stream, x.line); }
static auto fields(const store::checkpoint& x) {
  return std::tie(x.seq, x.hash, x.at_ms, x.sandboxes, x.signature);
}
static auto fields(const agent_stream_error& x) { return std::tie(x.why, x.lost); }
static auto fields(const exec_outcome& x) {
  return std::tie(x.pid, x.stdout_text, x.stderr_text, x.stdout_truncated, x.stderr_truncated,
                  x.exit_code, x.timed_out);
}

template <class T>
static auto operator==(const T& a, const T& b) -> decltype(fields(a), bool()) {
  return fields(a) == fields(b);
}

namespace {

// -- how many fields ----------------------------------------------------------

/// Converts to any member type, to count an aggregate's members by how many
/// initializers it takes. Not to std::optional: its converting constructor
/// (from anything its value is made from) would make that ambiguous.
struct any_field {
  template <class T>
  struct not_optional : std::true_type {};
  template <class T>
  struct not_optional<std::optional<T>> : std::false_type {};
  template <class T, class = std::enable_if_t<not_optional<T>::value>>
  operator T() const;
};

// The most initializers T{...} takes: the (int) overload while one more fits.
template <class T, class... Fs>
constexpr size_t aggregate_fields(long) {
  return sizeof...(Fs);
}
template <class T, class... Fs>
constexpr auto aggregate_fields(int) -> decltype(T{Fs{}..., any_field{}}, size_t{}) {
  return aggregate_fields<T, Fs..., any_field>(0);
}

/// An inspector that counts the fields an inspect names (annotations aside).
struct field_counter {
  using result_type = void;
  static constexpr bool reads_state = true;
  static constexpr bool writes_state = false;
  size_t count = 0;
  template <class... Ts>
  void operator()(Ts&&...) {
    count += (size_t{0} + ... + (caf::meta::is_annotation<std::decay_t<Ts>>::value ? 0 : 1));
  }
};

template <class T>
size_t inspected_fields() {
  field_counter counter;
  T x;
  inspect(counter, x);
  return counter.count;
}

// -- comparing ----------------------------------------------------------------

/// Compares `a` and `b` field by field; `equal` says whether each should be.
template <class T, size_t... I>
void compare_fields(const char* what, const T& a, const T& b, bool equal,
                    std::index_sequence<I...>) {
  auto fa = fields(a);
  auto fb = fields(b);
  auto check = [&](size_t i, bool same) {
    EXPECT_EQ(same, equal) << what << " field " << i
                           << (equal ? " lost in the round trip" : " left at its default");
  };
  (check(I, std::get<I>(fa) == std::get<I>(fb)), ...);
}

template <class T>
void expect_same(const char* what, const T& a, const T& b) {
  constexpr size_t n = std::tuple_size<decltype(fields(a))>::value;
  compare_fields(what, a, b, true, std::make_index_sequence<n>{});
}

template <class T>
T round_trip(const T& in) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  auto copy = in;
  if (auto err = sink(copy))
    ADD_FAILURE() << "save: " << caf::to_string(err);
  T out;
  caf::binary_deserializer source{nullptr, buf};
  if (auto err = source(out))
    ADD_FAILURE() << "load: " << caf::to_string(err);
  EXPECT_EQ(source.remaining(), 0u);
  return out;
}

/// The whole check of one type: `filled` sets every field off its default,
/// every field is inspected (and compared here), and all survive.
template <class T>
void check_type(const char* what, const T& filled) {
  constexpr size_t compared = std::tuple_size<decltype(fields(filled))>::value;
  EXPECT_EQ(aggregate_fields<T>(0), compared) << what << ": the test misses a field";
  EXPECT_EQ(inspected_fields<T>(), aggregate_fields<T>(0)) << what << ": inspect misses a field";
  compare_fields(what, filled, T{}, false, std::make_index_sequence<compared>{});
  expect_same(what, round_trip(filled), filled);
}

// -- values with every field set ----------------------------------------------

execution_info an_execution() { return {101, 3, 768, 4500}; }

event an_event() {
  event e;
  e.seq = 42;
  e.id = "ev-1";
  e.type = event_type::killed;
  e.timestamp_ms = 1700000000123;
  e.sandbox_id = "sbx-1";
  e.template_id = "python";
  e.team_id = "org-1";
  e.execution_id = "exec-1";
  e.metadata = {{"owner", "ana"}};
  e.end_at_ms = 1700000300000;
  e.env_vars = {{"TOKEN", "secret"}};
  e.alias = "py";
  e.cpu_count = 4;
  e.memory_mb = 2048;
  e.disk_size_mb = 8192;
  e.timeout_s = 600;
  e.idle_timeout_s = 120;
  e.max_end_ms = 1700086400000;
  e.execution = an_execution();
  e.reason = kill_reason::idle;
  e.ext = {{event_ext::agent, "codex"}};
  e.prev_hash = "ab01";
  e.hash = "cd02";
  e.format = 3;
  return e;
}

egress_rule an_egress_rule() {
  return {"*.example.com", {{"Authorization", "Bearer sk-1 ${e2b.secrets.api-key}"}, {"X-A", "b"}}};
}

network_view a_network() {
  network_view n;
  n.internet = false;
  n.internet_set = true;
  n.allow_out = {"10.0.0.0/8"};
  n.deny_out = {"0.0.0.0/0"};
  n.public_traffic = false;
  n.mask_request_host = "localhost:${PORT}";
  n.rules = {an_egress_rule()};
  return n;
}

create_spec::agent_launch an_agent_launch() {
  return {"codex", "gpt-5", "fix the tests", "codex exec", "OPENAI_API_KEY", "sk-1", 25};
}

volume a_volume() { return {"vol-0123456789abcdef0123", "org-1", "data", 1700000000000, 64}; }
volume_mount a_volume_mount() { return {"data", "/mnt/data", "vol-0123456789abcdef0123", 64}; }

create_spec a_spec() {
  create_spec s;
  s.org_id = "org-1";
  s.template_id = "python";
  s.timeout_s = 900;
  s.metadata = {{"owner", "ana"}};
  s.env_vars = {{"TOKEN", "secret"}};
  s.alias = "py";
  s.idle_timeout_s = 60;
  s.max_lifetime_s = 86400;
  s.agent = an_agent_launch();
  s.auto_pause = true;
  s.auto_pause_memory = false;
  s.auto_resume = true;
  s.network = a_network();
  s.volumes = {a_volume_mount()};
  return s;
}

sandbox_record a_record() {
  sandbox_record r;
  r.id = "sbx-1";
  r.org_id = "org-1";
  r.template_id = "python";
  r.alias = "py";
  r.metadata = {{"owner", "ana"}};
  r.env_vars = {{"TOKEN", "secret"}};
  r.cpu_count = 4;
  r.memory_mb = 2048;
  r.disk_size_mb = 8192;
  r.timeout_s = 600;
  r.idle_timeout_s = 120;
  r.max_end_ms = 1700086400000;
  r.started_at_ms = 1700000000000;
  r.end_at_ms = 1700000600000;
  r.state = sandbox_state::paused;
  r.execution_id = "exec-1";
  r.execution_started_ms = 1700000000500;
  r.end_reason = kill_reason::timeout;
  r.last_seq = 42;
  r.ext = {{event_ext::cold, "true"}};
  return r;
}

connect_result a_connect_result() { return {a_record(), true}; }

container_sample a_sample() { return {1700000000000, 2, 37.5, 100, 200, 30, 400, 500}; }

webhook a_webhook() {
  webhook w;
  w.id = "wh-1";
  w.org_id = "org-1";
  w.name = "audit";
  w.url = "https://example.com/hook";
  w.secret = "whsec";
  w.events = {event_type::created, event_type::killed};
  w.enabled = false;
  w.created_ms = 1700000000000;
  return w;
}

registry_stats some_stats() {
  registry_stats s;
  s.by_state = {{"running", 3}, {"paused", 1}};
  s.latency_bounds_s = {0.1, 1, 10};
  s.latency_counts = {1, 4, 5};
  s.latency_sum_s = 7.25;
  s.creates = 5;
  s.create_failures = 2;
  s.warm = {{"python", 2}};
  s.ready_disks = 6;
  return s;
}

list_query a_query() {
  list_query q;
  q.org = "org-1";
  q.states = {sandbox_state::running, sandbox_state::paused};
  q.metadata = {{"owner", "ana"}};
  q.template_id = "python";
  q.started_after_ms = 1700000000000;
  q.ascending = true;
  q.limit = 25;
  q.after = std::make_pair(int64_t{1700000000001}, std::string{"sbx-0"});
  return q;
}

rendered_page a_page() {
  rendered_page p;
  p.json = R"([{"sandboxID":"sbx-1"}])";
  p.more = true;
  p.total_running = 9;
  p.last = std::make_pair(int64_t{1700000000000}, std::string{"sbx-1"});
  return p;
}

snapshot_info a_snapshot() {
  snapshot_info s;
  s.id = "snap-1";
  s.org_id = "org-1";
  s.name = "before-upgrade";
  s.sandbox_id = "sbx-1";
  s.template_id = "python";
  s.layers = {"/var/lib/sandboxd/layers/b", "/var/lib/sandboxd/layers/a"};
  s.node = "w1";
  s.created_ms = 1700000000000;
  s.hidden = true;
  return s;
}

template_request a_template_request() {
  template_request t;
  t.org_id = "org-1";
  t.name = "mine";
  t.extends = "python";
  t.packages = {"jq"};
  t.env = {{"LANG", "C.UTF-8"}};
  t.start_cmd = "sleep infinity";
  t.cpu_count = 4;
  t.memory_mb = 1024;
  return t;
}

template_step a_step() { return {"COPY", {"src", "/dst", "user", "0755"}, "ab12", true}; }

template_steps some_steps() {
  template_steps t;
  t.from_template = "base";
  t.from_image = "debian:bookworm";
  t.steps = {a_step()};
  t.start_cmd = "python3 -m http.server";
  t.ready_cmd = "true";
  t.force = true;
  return t;
}

code_template_request a_code_template_request() {
  code_template_request r;
  r.org_id = "org-1";
  r.name = "web";
  r.tags = {"v1"};
  r.cpu_count = 2;
  r.memory_mb = 1024;
  return r;
}

template_build a_build() {
  template_build b;
  b.id = "build-1";
  b.template_id = "tpl-1";
  b.org_id = "org-1";
  b.status = build_status::ready;
  b.reason = "none";
  b.created_ms = 1;
  b.updated_ms = 2;
  b.finished_ms = 3;
  b.parent = "python";
  b.packages = {"jq", "python3"};
  b.run = {"pip install x"};
  b.env = {{"LANG", "C.UTF-8"}};
  b.start_cmd = "sleep infinity";
  b.ready_port = 8080;
  b.cpu_count = 4;
  b.memory_mb = 1024;
  b.hash = "ff00";
  b.code = true;
  b.steps = some_steps();
  b.snapshot_id = "snap-1";
  b.failed_step = "2";
  b.tags = {"v1"};
  b.default_user = "root";
  b.default_workdir = "/app";
  b.tag_times = {{"v1", 1700000000000}};
  b.asked_cpu = 3;
  b.asked_memory_mb = 768;
  return b;
}

user_template a_user_template() {
  user_template t;
  t.id = "tpl-1";
  t.org_id = "org-1";
  t.name = "mine";
  t.created_ms = 1;
  t.updated_ms = 2;
  t.build_count = 3;
  t.latest_build = "build-2";
  t.latest_status = build_status::building;
  t.ready = a_build();
  return t;
}

network_policy a_policy() {
  return {false, {"example.com", "10.0.0.0/8"}, {"10.1.0.0/16"}, {an_egress_rule()}, "org-1"};
}

container_spec a_container_spec() {
  container_spec s;
  s.id = "sbx-1";
  s.lower_rootfs = "/var/cache/sandboxd/templates/base/rootfs";
  s.template_name = "base";
  s.layers = {"/data/snapshots/a"};
  s.layers_node = "w2";
  s.cpu_count = 4;
  s.memory_mb = 1024;
  s.pids_max = 77;
  s.disk = {1 << 30, 5000};
  s.env = {{"TOKEN", "secret"}};
  s.network = a_policy();
  s.volumes = {{a_volume(), "/mnt/data"}};
  return s;
}

node_capacity a_capacity() { return {"w1", 8, 32768, 20000, 12, {"base", "python"}}; }

node_view a_node_view() { return {a_capacity(), true, true, true, 3, 1536}; }

agent_frame a_frame() { return {R"({"type":"stdout","data":"aGkK"})"}; }

agent_stream_error a_stream_error() { return {{504, "sandbox agent stream ended: eof"}, true}; }

exec_outcome an_outcome() { return {4242, "out\n", "err\n", true, true, 3, true}; }

} // namespace

TEST(MessageTypes, NetworkPolicyRoundTrips) { check_type("network_policy", a_policy()); }
TEST(MessageTypes, DiskLimitsRoundTrips) { check_type("disk_limits", disk_limits{1 << 30, 5000}); }
TEST(MessageTypes, ContainerSpecRoundTrips) { check_type("container_spec", a_container_spec()); }
TEST(MessageTypes, NodeCapacityRoundTrips) { check_type("node_capacity", a_capacity()); }
TEST(MessageTypes, NodeViewRoundTrips) { check_type("node_view", a_node_view()); }
TEST(MessageTypes, AgentFrameRoundTrips) { check_type("agent_frame", a_frame()); }
TEST(MessageTypes, FailureRoundTrips) { check_type("failure", failure{418, "teapot"}); }
TEST(MessageTypes, AgentStreamErrorRoundTrips) {
  check_type("agent_stream_error", a_stream_error());
}
TEST(MessageTypes, ExecOutcomeRoundTrips) { check_type("exec_outcome", an_outcome()); }
TEST(MessageTypes, VolumeRoundTrips) { check_type("volume", a_volume()); }
TEST(MessageTypes, VolumeMountRoundTrips) { check_type("volume_mount", a_volume_mount()); }
TEST(MessageTypes, SpecVolumeRoundTrips) {
  check_type("spec_volume", spec_volume{a_volume(), "/mnt/data"});
}

// A blocking job is a closure for this node's executor: writing one, alone or
// in a message, and reading one both fail rather than carry nothing.
TEST(MessageTypes, BlockingJobNeverLeavesItsNode) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  blocking_job job{[] {}};
  auto err = sink(job);
  ASSERT_TRUE(err);
  EXPECT_EQ(err.code(), static_cast<uint8_t>(caf::sec::state_not_serializable));
  EXPECT_NE(caf::to_string(err).find("never leaves its node"), std::string::npos)
    << caf::to_string(err);
  std::vector<char> some{0, 0, 0, 0};
  caf::binary_deserializer source{nullptr, some};
  blocking_job in;
  EXPECT_TRUE(source(in));
  EXPECT_FALSE(in.run);
  EXPECT_EQ(caf::deep_to_string(job), "blocking_job()");
}

TEST(MessageTypes, EventRoundTrips) { check_type("event", an_event()); }
TEST(MessageTypes, ExecutionInfoRoundTrips) { check_type("execution_info", an_execution()); }
TEST(MessageTypes, CreateSpecRoundTrips) { check_type("create_spec", a_spec()); }
TEST(MessageTypes, AgentLaunchRoundTrips) { check_type("agent_launch", an_agent_launch()); }
TEST(MessageTypes, NetworkViewRoundTrips) { check_type("network_view", a_network()); }
TEST(MessageTypes, EgressRuleRoundTrips) { check_type("egress_rule", an_egress_rule()); }
TEST(MessageTypes, EgressHeaderRoundTrips) {
  check_type("egress_header", egress_header{"X-Key", "${e2b.secrets.k}"});
}
TEST(MessageTypes, SandboxRecordRoundTrips) { check_type("sandbox_record", a_record()); }
TEST(MessageTypes, ConnectResultRoundTrips) { check_type("connect_result", a_connect_result()); }
TEST(MessageTypes, ContainerSampleRoundTrips) { check_type("container_sample", a_sample()); }
TEST(MessageTypes, WebhookRoundTrips) { check_type("webhook", a_webhook()); }
TEST(MessageTypes, DeliveryRoundTrips) {
  delivery_attempt a{"d-1", true, 12, "https://example.com/hook", 204, "http_error", "late", 9};
  check_type("delivery_attempt", a);
  check_type("delivery", delivery{"wh-1", 3, "ev-1", event_type::killed, "sbx-1", {a}, true});
}
TEST(MessageTypes, SecretRecordRoundTrips) {
  secret_version v{2, 7, "sealed"};
  check_type("secret_version", v);
  check_type("secret_record", secret_record{"sec_1", "org-1", "k", {{"a", "b"}}, 1, 2, 2, {v}});
}
TEST(MessageTypes, BuildLogEntryRoundTrips) {
  check_type("build_log_entry", build_log_entry{5, "error", "2", "failed"});
}
TEST(MessageTypes, StoredLogLineRoundTrips) {
  check_type("log_line", store::log_line{5, "stderr", "boom"});
}
TEST(MessageTypes, CheckpointRoundTrips) {
  check_type("checkpoint", store::checkpoint{4, "h", 9, {a_record()}, "sig"});
}
TEST(MessageTypes, RegistryStatsRoundTrips) { check_type("registry_stats", some_stats()); }
TEST(MessageTypes, ListQueryRoundTrips) { check_type("list_query", a_query()); }
TEST(MessageTypes, RenderedPageRoundTrips) { check_type("rendered_page", a_page()); }
TEST(MessageTypes, SnapshotInfoRoundTrips) { check_type("snapshot_info", a_snapshot()); }
TEST(MessageTypes, TemplateRequestRoundTrips) { check_type("template_request", a_template_request()); }
TEST(MessageTypes, TemplateBuildRoundTrips) { check_type("template_build", a_build()); }
TEST(MessageTypes, TemplateStepRoundTrips) { check_type("template_step", a_step()); }
TEST(MessageTypes, TemplateStepsRoundTrips) { check_type("template_steps", some_steps()); }
TEST(MessageTypes, CodeTemplateRequestRoundTrips) {
  check_type("code_template_request", a_code_template_request());
}
TEST(MessageTypes, UserTemplateRoundTrips) { check_type("user_template", a_user_template()); }
TEST(MessageTypes, TemplateUsageRoundTrips) { check_type("template_usage", template_usage{7, 1700000000000}); }

TEST(MessageTypes, UnsetOptionalsStayUnset) {
  // The filled values above set every optional; this is the other branch.
  auto q = round_trip(list_query{});
  EXPECT_FALSE(q.started_after_ms);
  EXPECT_FALSE(q.after);
  auto r = a_record();
  r.end_reason.reset();
  EXPECT_FALSE(round_trip(r).end_reason);
}

TEST(MessageTypes, SecretsStayOutOfToString) {
  auto text = caf::deep_to_string(a_spec()) + caf::deep_to_string(a_webhook());
  EXPECT_EQ(text.find("secret"), std::string::npos) << text;
  EXPECT_EQ(text.find("sk-1"), std::string::npos) << text;
  EXPECT_EQ(text.find("whsec"), std::string::npos) << text;
  auto spec = caf::deep_to_string(a_container_spec());
  EXPECT_EQ(spec.find("secret"), std::string::npos) << spec;
  EXPECT_NE(text.find("org-1"), std::string::npos) << text;
}

// A message is written with its elements' announced names and read back
// through the factories registered under them: what the middleman does.
TEST(MessageTypes, AnnouncedTypesCrossInAMessage) {
  caf::actor_system_config cfg;
  add_message_types(cfg);
  caf::actor_system sys{cfg};
  std::vector<sandbox_record> records{a_record(), a_record()};
  records[1].id = "sbx-2";
  std::map<std::string, template_usage> usage{{"python", {7, 1700000000000}}};
  auto in = caf::make_message(an_event(), a_spec(), a_record(), records,
                              std::vector<std::string>{"sbx-1", "sbx-2"}, a_connect_result(),
                              a_sample(), kill_reason::orphaned, a_webhook(), some_stats(),
                              a_query(), a_page(), a_snapshot(), a_network(),
                              a_template_request(), a_user_template(), usage, a_frame(),
                              a_stream_error(), an_outcome());
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  ASSERT_FALSE(sink(in));
  caf::message out;
  caf::binary_deserializer source{sys, buf};
  ASSERT_FALSE(source(out));
  ASSERT_TRUE((out.match_elements<event, create_spec, sandbox_record, std::vector<sandbox_record>,
                                  std::vector<std::string>, connect_result, container_sample,
                                  kill_reason, webhook, registry_stats, list_query, rendered_page,
                                  snapshot_info, network_view, template_request, user_template,
                                  std::map<std::string, template_usage>, agent_frame,
                                  agent_stream_error, exec_outcome>()));
  expect_same("event", out.get_as<event>(0), an_event());
  expect_same("create_spec", out.get_as<create_spec>(1), a_spec());
  expect_same("sandbox_record", out.get_as<sandbox_record>(2), a_record());
  EXPECT_TRUE(out.get_as<std::vector<sandbox_record>>(3) == records);
  EXPECT_EQ(out.get_as<std::vector<std::string>>(4), (std::vector<std::string>{"sbx-1", "sbx-2"}));
  expect_same("connect_result", out.get_as<connect_result>(5), a_connect_result());
  expect_same("container_sample", out.get_as<container_sample>(6), a_sample());
  EXPECT_TRUE(out.get_as<kill_reason>(7) == kill_reason::orphaned);
  expect_same("webhook", out.get_as<webhook>(8), a_webhook());
  expect_same("registry_stats", out.get_as<registry_stats>(9), some_stats());
  expect_same("list_query", out.get_as<list_query>(10), a_query());
  expect_same("rendered_page", out.get_as<rendered_page>(11), a_page());
  expect_same("snapshot_info", out.get_as<snapshot_info>(12), a_snapshot());
  expect_same("network_view", out.get_as<network_view>(13), a_network());
  expect_same("template_request", out.get_as<template_request>(14), a_template_request());
  expect_same("user_template", out.get_as<user_template>(15), a_user_template());
  EXPECT_TRUE((out.get_as<std::map<std::string, template_usage>>(16) == usage));
  expect_same("agent_frame", out.get_as<agent_frame>(17), a_frame());
  expect_same("agent_stream_error", out.get_as<agent_stream_error>(18), a_stream_error());
  expect_same("exec_outcome", out.get_as<exec_outcome>(19), an_outcome());
}

// The handles of the agent stream messages are announced: a relay's reply
// carries one, its request the other.
TEST(MessageTypes, AgentStreamHandlesAreAnnounced) {
  caf::actor_system_config cfg;
  add_message_types(cfg);
  caf::actor_system sys{cfg};
  EXPECT_TRUE(sys.types().make_value("sandboxd::agent_sink_actor"));
  EXPECT_TRUE(sys.types().make_value("sandboxd::agent_stream_actor"));
  EXPECT_TRUE(sys.types().make_value("sandboxd::blocking_job"));
}

// A node that was not told the names cannot read what an announced one sent:
// add_message_types is needed on every node. (CAF 0.17 only prints to stderr
// when it writes an unannounced type, so the reading side is where this shows.)
TEST(MessageTypes, UnannouncedTypesCannotBeRead) {
  caf::actor_system_config sender_cfg;
  add_message_types(sender_cfg);
  caf::actor_system sender{sender_cfg};
  std::vector<char> buf;
  caf::binary_serializer sink{sender, buf};
  auto in = caf::make_message(a_record());
  ASSERT_FALSE(sink(in));
  caf::actor_system_config receiver_cfg;
  caf::actor_system receiver{receiver_cfg};
  caf::message out;
  caf::binary_deserializer source{receiver, buf};
  // CAF 0.17 answers with an empty message here rather than an error.
  auto err = source(out);
  EXPECT_FALSE(out.match_elements<sandbox_record>()) << caf::to_string(err);
  EXPECT_FALSE(receiver.types().make_value("sandboxd::sandbox_record"));
  EXPECT_TRUE(sender.types().make_value("sandboxd::sandbox_record"));
}

} // namespace sandboxd
