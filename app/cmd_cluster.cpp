// eddy coordinator / eddy worker — the processes of a multi-node eddy cluster.
//
// The coordinator process (membership, assignment, epochs, publishing; --exit-at-end ends the
// cluster once the input is committed) and the worker process (joins with backoff, runs its
// units, rejoins as a new member after losing the coordinator). docs/cluster.md says what is
// built and what is not; `eddy run` runs a pipeline in one process.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "actors/cluster_messages.hpp"
#include "actors/type_registry.hpp"
#include "actors/version.hpp"
#include "app/cluster_common.hpp"
#include "app/commands.hpp"
#include "app/signals.hpp"
#include "coordinator/cluster_coordinator.hpp"
#include "coordinator/cluster_manifest.hpp"
#include "model/pipeline_config.hpp"
#include "state/file_io.hpp"
#include "worker/checkpoint/checkpoint_compat.hpp"
#include "worker/kafka/consumer.hpp"
#include "worker/kafka/kafka_sink.hpp"
#include "worker/postgres/pg_sink.hpp"
#include "worker/runtime/pipeline_runtime.hpp"
#include "worker/runtime/worker_node.hpp"
#include "worker/sink/epoch_files.hpp"
#include "worker/sink/publish_dispatch.hpp"
#include "worker/sink/sink.hpp"
#include "worker/window/windowing.hpp"

namespace eddy::app {

std::string this_host() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

// The shared helpers: see app/cluster_common.hpp.
std::vector<std::unique_ptr<sink>> publishing_sinks(const pipeline_config& cfg) {
  std::vector<std::unique_ptr<sink>> sinks(cfg.sinks.size());
  if (!cfg.checkpoint.enabled()) return sinks;  // nothing is staged: workers write per batch
  std::string err;
  auto fmt = time_formatter::for_zone(cfg.timezone, &err);
  if (!fmt) throw CLI::RuntimeError("pipeline.timezone: " + err, 2);
  for (size_t i = 0; i < cfg.sinks.size(); ++i) {
    if (cfg.sinks[i].kind == sink_kind::postgres)
      sinks[i] = make_postgres_sink(cfg, i, *fmt, std::cerr, pg_start::lazy, &err);
    else if (cfg.sinks[i].kind == sink_kind::kafka)
      sinks[i] = make_kafka_sink(cfg, i, *fmt, &err);  // connects on first use
    else
      continue;
    if (!sinks[i]) throw CLI::RuntimeError(err, 2);
  }
  return sinks;
}

void lock_cluster_checkpoints(const pipeline_config& cfg) {
  const std::filesystem::path dir = std::filesystem::path(cfg.checkpoint.dir) / "cluster";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = (dir / "coordinator.lock").string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    throw CLI::RuntimeError("checkpoint.dir: cannot open " + path + ": " + std::strerror(errno), 1);
  struct flock lk {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  if (::fcntl(fd, F_SETLK, &lk) == 0) return;  // held (fd stays open) until the process ends
  ::close(fd);
  const auto holder = file_io::write_lock_holder(path);
  throw CLI::RuntimeError(
      "checkpoint.dir " + cfg.checkpoint.dir + " is in use by another coordinator" +
          (holder ? " (pid " + std::to_string(*holder) + ")" : std::string()) +
          " (eddy coordinator, or eddy run --as-cluster): one coordinator per checkpoint "
          "directory; stop that one first",
      1);
}

bool check_checkpoint_dir(const pipeline_config& cfg,
                          const std::map<std::string, std::string>& compat, bool take_over) {
  namespace fs = std::filesystem;
  const fs::path dir = cfg.checkpoint.dir;
  std::error_code ec;
  uint64_t newest_run = 0;
  for (const auto& e : fs::directory_iterator(dir / "epochs", ec)) {
    const std::string n = e.path().filename().string();
    if (n.empty() || n.size() > 19 || n.find_first_not_of("0123456789") != std::string::npos)
      continue;
    std::error_code mec;
    if (fs::exists(e.path() / "manifest.json", mec))
      newest_run = std::max<uint64_t>(newest_run, std::stoull(n));
  }
  std::string lerr;
  // Cluster manifests next to eddy run's checkpoints: a take-over converted them (eddy run
  // refuses a cluster's directory, so none of its epochs can be newer).
  if (newest_run > 0 && list_cluster_manifests(dir, &lerr).empty()) {
    if (take_over) return true;
    throw CLI::RuntimeError(
        "checkpoint.dir " + cfg.checkpoint.dir +
            " holds the checkpoints of `eddy run` (newest epoch " + std::to_string(newest_run) +
            "): stop eddy run and continue them as a cluster's with --take-over-run (eddy "
            "coordinator, or eddy run --as-cluster), or use a new checkpoint.dir (and new sink "
            "paths: starting over would "
            "read the input again and publish its output a second time)",
        2);
  }
  std::string err;
  const auto epochs = list_cluster_manifests(dir, &err);
  for (auto it = epochs.rbegin(); it != epochs.rend(); ++it) {
    std::string rerr;
    auto m = read_cluster_manifest(dir, *it, &rerr);
    if (!m) continue;  // damaged: the coordinator falls back past it with a warning
    if (!m->compat.empty()) {
      auto e = compat_check(m->compat, compat, cfg.checkpoint.dir,
                            "Use a new checkpoint.dir, or delete its cluster/ directory to start "
                            "over (drops the saved state and offsets).");
      if (!e.empty()) throw CLI::RuntimeError(e, 2);
    }
    break;
  }
  return false;
}

namespace {

struct host_port {
  std::string host;
  uint16_t port = 0;
};

host_port parse_host_port(const std::string& text, const std::string& option, bool allow_zero) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    throw CLI::RuntimeError(option + ": expected HOST:PORT, got '" + text + "'", 2);
  host_port hp{text.substr(0, colon), 0};
  const std::string port = text.substr(colon + 1);
  long v = -1;
  try {
    size_t used = 0;
    v = std::stol(port, &used);
    if (used != port.size()) v = -1;
  } catch (const std::exception&) {
    v = -1;
  }
  if (v < (allow_zero ? 0 : 1) || v > 65535)
    throw CLI::RuntimeError(
        option + ": port must be " + (allow_zero ? "0" : "1") + "..65535, got '" + port + "'", 2);
  hp.port = static_cast<uint16_t>(v);
  return hp;
}

/// Creates `dir` (and its parents) or throws the CLI error naming `option`.
void make_directory(const std::string& dir, const std::string& option) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw CLI::RuntimeError(option + " " + dir + ": cannot create the directory" +
                                (ec ? ": " + ec.message() : std::string()),
                            2);
}

struct heartbeat_cli {
  int heartbeat_ms = 500;
  int timeout_ms = 2000;
};

void add_heartbeat_options(CLI::App* cmd, heartbeat_cli& hb) {
  cmd->add_option("--heartbeat-ms", hb.heartbeat_ms,
                  "Heartbeat interval between nodes in ms (default 500)")
      ->check(CLI::Range(50, 60000));
  cmd->add_option("--connection-timeout-ms", hb.timeout_ms,
                  "A node whose heartbeats stop for this long is taken as lost (default 2000;\n"
                  "a killed process is seen at once from its dropped connection)")
      ->check(CLI::Range(100, 600000));
}

void configure(caf::actor_system_config& cfg, const heartbeat_cli& hb) {
  cfg.load<caf::io::middleman>();
  cfg.set("middleman.heartbeat-interval",
          caf::timespan{std::chrono::milliseconds(hb.heartbeat_ms)});
  cfg.set("middleman.connection-timeout", caf::timespan{std::chrono::milliseconds(hb.timeout_ms)});
  cfg.set("logger.console", caf::atom("none"));
  register_message_types(cfg);
}

// ---- eddy coordinator ------------------------------------------------------------------------

struct coordinator_cli {
  std::string config, listen, state_dir, bootstrap;
  int epoch_timeout_ms = 30000;
  int metadata_interval_ms = 10000;
  bool debug = false;
  bool exit_at_end = false;
  bool take_over_run = false;
  heartbeat_cli hb;
};

void run_coordinator(const coordinator_cli& o) {
  if (o.hb.timeout_ms <= o.hb.heartbeat_ms)
    throw CLI::RuntimeError("--connection-timeout-ms must be larger than --heartbeat-ms", 2);
  const host_port listen = parse_host_port(o.listen, "--listen", true);
  auto loaded = load_pipeline_config(o.config);
  if (!loaded.config) throw CLI::RuntimeError(loaded.error, 2);
  pipeline_config& cfg = *loaded.config;
  apply_bootstrap_override(cfg, o.bootstrap);
  if (!cfg.checkpoint.enabled())
    throw CLI::RuntimeError(
        o.config +
            ": a cluster pipeline needs a [checkpoint] table with a dir that every node can reach "
            "(a shared filesystem path): the coordinator commits each epoch there and the "
            "workers restore their units from it",
        2);
  const std::string bootstrap = o.bootstrap.empty() ? cfg.source.bootstrap_servers : o.bootstrap;
  if (bootstrap.empty())
    throw CLI::RuntimeError("no Kafka bootstrap servers: set source.bootstrap_servers in " +
                                o.config + " or pass --bootstrap",
                            2);
  int32_t shards = 0;
  if (!cfg.aggregates.empty()) {
    std::string error;
    auto plan = aggregation_plan::from_config(cfg, &error);
    if (!plan) throw CLI::RuntimeError(o.config + ": " + error, 2);
    shards = plan->shard_count;
  }
  const auto compat = compat_fingerprint(cfg);
  lock_cluster_checkpoints(cfg);
  const bool take_over = check_checkpoint_dir(cfg, compat, o.take_over_run);
  make_directory(o.state_dir, "--state-dir");
  std::ostringstream text;
  text << std::ifstream(o.config).rdbuf();

  signal_watch signals;
  std::string error;
  auto consumer = kafka_consumer::create(bootstrap, cfg.source.group_id, {}, &error);
  std::vector<int32_t> partitions;
  if (consumer) partitions = consumer->partitions(cfg.source.topic, 10000, &error);
  if (partitions.empty())
    throw CLI::RuntimeError("cannot read the partitions of topic " + cfg.source.topic + " from " +
                                bootstrap + ": " + error,
                            1);

  if (take_over) {
    uint64_t epoch = 0;
    size_t units = 0;
    const auto t0 = std::chrono::steady_clock::now();
    if (auto e = take_over_run_checkpoints(cfg, partitions, std::cerr, &epoch, &units); !e.empty())
      throw CLI::RuntimeError("--take-over-run: " + e, 1);
    std::cerr << "eddy coordinator: took over eddy run's checkpoint " << epoch << " in "
              << cfg.checkpoint.dir << " as " << units << " units (in "
              << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - t0)
                     .count()
              << " ms); eddy run refuses this checkpoint.dir from now on\n";
  } else if (o.take_over_run && list_cluster_manifests(cfg.checkpoint.dir, &error).empty()) {
    std::cerr << "eddy coordinator: --take-over-run: " << cfg.checkpoint.dir
              << " holds no checkpoints of eddy run; starting as a new pipeline\n";
  }

  // --exit-at-end reads to the ends the partitions have now (as eddy run --exit-at-end).
  std::map<int32_t, int64_t> end_offsets;
  if (o.exit_at_end) {
    auto w = consumer->watermarks(cfg.source.topic, partitions, 10000, &error);
    if (!w)
      throw CLI::RuntimeError("cannot read the end offsets of " + cfg.source.topic + ": " + error,
                              1);
    for (const auto& [p, range] : *w) end_offsets[p] = range.second;
  }

  caf::actor_system_config sys_cfg;
  configure(sys_cfg, o.hb);
  // The coordinator is idle most of the time: CAF's default work-stealing scheduler polls for
  // work with 50 µs sleeps on every thread, which cost ~0.2 of a core here — taken from the
  // workers on a shared host (docs/benchmarks.md §6). Work sharing waits on a condition variable.
  sys_cfg.set("scheduler.policy", caf::atom("sharing"));
  caf::actor_system sys{sys_cfg};
  cluster_coordinator_options copts;
  copts.pipeline_name = cfg.name;
  copts.compat = compat;
  copts.pipeline_toml = text.str();
  copts.bootstrap = bootstrap;
  copts.partitions = partitions;
  copts.shards = shards;
  copts.state_dir = o.state_dir;
  copts.checkpoint_dir = cfg.checkpoint.dir;
  copts.checkpoint_interval_ms = cfg.checkpoint.interval_ms;
  copts.epoch_timeout_ms = o.epoch_timeout_ms;
  copts.output_sync = cfg.checkpoint.sync;
  copts.output_dirs = staged_output_dirs(cfg);
  // Only the coordinator publishes: what workers staged in a sink's own staging directory is
  // delivered by that sink (built here only to publish), the rest is renamed.
  auto publishers = std::make_shared<std::vector<std::unique_ptr<sink>>>(publishing_sinks(cfg));
  copts.publish = [publishers](const std::vector<std::string>& paths, bool sync) {
    return publish_to_sinks(*publishers, paths, sync);
  };
  copts.debug = o.debug;
  copts.exit_at_end = o.exit_at_end;
  copts.end_offsets = end_offsets;
  auto coordinator = spawn_cluster_coordinator(sys, std::move(copts));
  auto port = sys.middleman().publish(coordinator, listen.port, listen.host.c_str(), true);
  if (!port) {
    caf::anon_send_exit(coordinator, caf::exit_reason::user_shutdown);
    throw CLI::RuntimeError("--listen " + o.listen + ": " + sys.render(port.error()), 1);
  }
  std::cout << "listening=" << listen.host << ":" << *port << std::endl;
  std::cerr << "eddy coordinator: pipeline " << cfg.name << ", topic " << cfg.source.topic << " ("
            << partitions.size() << " partitions, " << shards << " shards), listening on "
            << listen.host << ":" << *port << "; heartbeats every " << o.hb.heartbeat_ms
            << " ms, a silent worker is lost after " << o.hb.timeout_ms << " ms; an epoch every "
            << cfg.checkpoint.interval_ms << " ms into " << cfg.checkpoint.dir << ", aborted after "
            << o.epoch_timeout_ms << " ms\n";
  // What each sink is and what it guarantees, as `eddy run` says it (README "Checkpoints and
  // recovery"): the coordinator publishes the transactional ones.
  write_sink_lines(std::cerr, cfg, "eddy coordinator: ");
  // The metadata watch: partitions added to the topic become units (at an epoch boundary).
  size_t known = partitions.size();
  bool said = false;
  caf::scoped_actor self{sys};
  self->monitor(coordinator);
  std::optional<caf::error> ended;  // the coordinator quit (--exit-at-end: the input is done)
  auto next_look = std::chrono::steady_clock::now();
  while (!signals.stop) {
    next_look += std::chrono::milliseconds(o.metadata_interval_ms);
    while (!signals.stop && !ended && std::chrono::steady_clock::now() < next_look)
      self->receive([&](caf::down_msg& dm) { ended = dm.reason; },
                    caf::after(std::chrono::milliseconds(100)) >> [] {});
    if (signals.stop || ended) break;
    std::string err;
    auto now = consumer->partitions(cfg.source.topic, 5000, &err);
    if (now.empty()) {
      if (!said)
        std::cerr << "eddy coordinator: warning: cannot read the partitions of " << cfg.source.topic
                  << " (" << err << "); retrying\n";
      said = true;
      continue;
    }
    said = false;
    if (now.size() > known) {
      known = now.size();
      caf::anon_send(coordinator, parts_atom::value, now);
    }
  }
  if (ended) {
    if (*ended) throw CLI::RuntimeError("", 1);  // it logged why
    return;
  }
  std::cerr << "eddy coordinator: stopping\n";
  caf::anon_send_exit(coordinator, caf::exit_reason::user_shutdown);
}

// ---- eddy worker -----------------------------------------------------------------------------

struct worker_cli {
  std::string join, name, local_dir;
  int slots = 1;
  heartbeat_cli hb;
};

/// One membership's actor system (CAF keeps a reference to its config).
struct membership_system {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
};

/// Destroys `m` on this thread (CAF 0.17: the thread that created the system; its destructor
/// waits for a logger reference that thread holds) within 10 s. The destructor waits until every
/// detached actor was destroyed, and one still referenced somewhere would hold the worker for
/// ever (seen once in ~20 runs under ASan, after leaving): past the bound a watchdog says so in
/// one line and ends the process with `code` (std::_Exit: the stuck destructor still runs).
void tear_down(std::unique_ptr<membership_system> m, const std::string& name, int code) {
  struct watch {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
  };
  auto w = std::make_shared<watch>();
  std::thread dog([w, name, code] {
    std::unique_lock<std::mutex> lock(w->mu);
    if (w->cv.wait_for(lock, std::chrono::seconds(10), [&] { return w->done; })) return;
    std::cerr << "eddy worker " << name
              << ": the actors of the ended membership did not stop within 10 s (an actor still "
                 "referenced); exiting with status "
              << code << std::endl;
    std::_Exit(code);
  });
  m->sys.reset();
  m.reset();
  {
    std::lock_guard<std::mutex> lock(w->mu);
    w->done = true;
  }
  w->cv.notify_one();
  dog.join();
}

void run_worker(const worker_cli& o) {
  if (o.hb.timeout_ms <= o.hb.heartbeat_ms)
    throw CLI::RuntimeError("--connection-timeout-ms must be larger than --heartbeat-ms", 2);
  const host_port coord = parse_host_port(o.join, "--join", false);
  make_directory(o.local_dir, "--local-dir");
  const std::string host = this_host();
  const std::string name = o.name.empty() ? host + "-" + std::to_string(getpid()) : o.name;
  // The name goes into output file names (<worker>-g<generation>).
  if (name.size() > 60 || !check_name_tag(name).empty())
    throw CLI::RuntimeError("--name " + name +
                                ": a worker name is 1-60 of the characters A-Z a-z 0-9 _ . - "
                                "(it goes into output file names)",
                            2);
  // Output names are "part-<epoch>[-<5-digit part>]-<worker>-g<gen>": a name starting with five
  // digits and '-' would read as another worker's part number.
  if (name.size() > 6 && name[5] == '-' &&
      std::all_of(name.begin(), name.begin() + 5, [](char c) { return c >= '0' && c <= '9'; }))
    throw CLI::RuntimeError("--name " + name +
                                ": a worker name must not start with five digits and '-' (output "
                                "file names put a part number there)" +
                                (o.name.empty() ? "; this host's name does: pass --name" : ""),
                            2);
  // Tests only: pretend to be another eddy version, to see the coordinator refuse it.
  const char* version_override = std::getenv("EDDY_TEST_VERSION");

  signal_watch signals;
  auto backoff = std::chrono::milliseconds(100);
  bool said_unreachable = false;
  while (!signals.stop) {
    // A fresh actor system for every membership: a new node id, so the coordinator never takes
    // a returning worker for the connection it already dropped (platform notes).
    auto membership = std::make_unique<membership_system>();
    configure(membership->cfg, o.hb);
    membership->sys = std::make_unique<caf::actor_system>(membership->cfg);
    caf::actor_system& sys = *membership->sys;
    auto handle = sys.middleman().remote_actor(coord.host, coord.port);
    if (!handle) {
      if (!said_unreachable) {
        std::cerr << "eddy worker " << name << ": coordinator " << o.join << " not reachable ("
                  << sys.render(handle.error()) << "); retrying with backoff\n";
        said_unreachable = true;
      }
      tear_down(std::move(membership), name, 1);
      signals.wait(static_cast<double>(backoff.count()) / 1000.0);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      continue;
    }
    backoff = std::chrono::milliseconds(100);
    said_unreachable = false;
    worker_node_options nopts;
    nopts.name = name;
    nopts.slots = static_cast<uint32_t>(o.slots);
    nopts.host = host;
    nopts.coordinator_label = o.join;
    nopts.local_dir = o.local_dir;
    if (version_override) nopts.version = version_override;
    auto outcome = std::make_shared<worker_node_outcome>();
    {
      auto coordinator = std::move(*handle);
      handle = caf::sec::invalid_argument;  // the proxy lives in this scope only
      auto node = spawn_worker_node(sys, coordinator, nopts, outcome);
      caf::scoped_actor self{sys};
      self->monitor(node);
      bool done = false, leaving = false;
      while (!done) {
        self->receive([&](caf::down_msg&) { done = true; },
                      caf::after(std::chrono::milliseconds(50)) >>
                          [&] {
                            if (signals.stop && !leaving) {
                              leaving = true;
                              // The coordinator answers once the next epoch committed and
                              // the units were handed over (bounded like an epoch).
                              leave_cluster(sys, node, 65000);
                            }
                          });
      }
    }
    const bool left = outcome->how == worker_node_outcome::kind::left;
    tear_down(std::move(membership), name, left ? 0 : 1);
    if (outcome->how == worker_node_outcome::kind::refused)
      throw CLI::RuntimeError("", 1);  // the node said why
    if (left) {
      std::cerr << "eddy worker " << name << ": left the cluster\n";
      return;
    }
    // Lost: join again as a new member.
  }
}

}  // namespace

void add_cluster_commands(CLI::App& root) {
  auto c = std::make_shared<coordinator_cli>();
  CLI::App* cc = root.add_subcommand(
      "coordinator",
      "The coordinator of a multi-node cluster (one per pipeline): reads the topic's partitions\n"
      "from Kafka, takes workers as they join (eddy worker --join), assigns partitions and\n"
      "aggregator shards to them (balanced by slots, moving as few as possible), notices a\n"
      "killed worker at once and a hung one after --connection-timeout-ms, and moves its units\n"
      "to the others. Logs every membership change and every move. Runs the epochs: every\n"
      "checkpoint.interval it asks every worker to checkpoint, and once every unit acked it\n"
      "commits the epoch (a manifest in checkpoint.dir/cluster/epochs) and publishes its output;\n"
      "any failure restarts all workers from the last committed epoch. The pipeline needs a\n"
      "[checkpoint] table whose dir every node reaches (a shared filesystem); paths in the\n"
      "pipeline file must mean the same on every node (absolute paths). PREVIEW: see the\n"
      "README's \"Multi-node\" section for what is missing.");
  cc->add_option("-c,--config", c->config, "Pipeline file (TOML); sent to every worker")
      ->required()
      ->check(CLI::ExistingFile);
  cc->add_option("--listen", c->listen,
                 "HOST:PORT to accept workers on (PORT 0: any free port,\n"
                 "printed as listening=HOST:PORT)")
      ->required();
  cc->add_option("--state-dir", c->state_dir,
                 "Directory for the coordinator's own state (assignment.json)")
      ->required();
  cc->add_option("--bootstrap", c->bootstrap,
                 "Kafka bootstrap servers, overriding source.bootstrap_servers");
  cc->add_option("--epoch-timeout-ms", c->epoch_timeout_ms,
                 "An epoch not committed this long after it began is aborted;\n"
                 "the workers restart from the last committed one (default 30000)")
      ->check(CLI::Range(100, 3600000));
  cc->add_option("--metadata-interval-ms", c->metadata_interval_ms,
                 "How often to look for partitions added to the topic; new ones\n"
                 "are assigned at the next epoch boundary (default 10000)")
      ->check(CLI::Range(100, 3600000));
  cc->add_flag("--debug", c->debug, "Also log one line per committed epoch");
  cc->add_flag("--exit-at-end", c->exit_at_end,
               "Read every partition to the end it has at start, close every window (as\n"
               "eddy run --exit-at-end), commit that output, then tell the workers to leave\n"
               "(they exit 0) and exit 0");
  cc->add_flag("--take-over-run", c->take_over_run,
               "checkpoint.dir holds the checkpoints of `eddy run` (stopped): continue from its\n"
               "newest one as a cluster (its state becomes the units' snapshots) instead of\n"
               "refusing the directory; eddy run refuses it afterwards");
  add_heartbeat_options(cc, c->hb);
  cc->callback([c] { run_coordinator(*c); });

  auto w = std::make_shared<worker_cli>();
  CLI::App* wc = root.add_subcommand(
      "worker",
      "A worker of a multi-node cluster: joins the coordinator at --join (retrying with backoff\n"
      "until it is up), receives the pipeline and its units (partitions and aggregator shards)\n"
      "from it and runs them, restored from the last committed epoch; joins again as a new\n"
      "member when it loses the coordinator. SIGTERM leaves the cluster cleanly: its units are\n"
      "handed over at the next epoch boundary, then it exits 0.\n"
      "PREVIEW: see the README's \"Multi-node\" section.");
  wc->add_option("--join", w->join, "The coordinator's HOST:PORT")->required();
  wc->add_option("--slots", w->slots, "This worker's share of the work (1-1024, default 1)")
      ->check(CLI::Range(1, 1024));
  wc->add_option("--name", w->name, "Unique worker name (default HOSTNAME-PID)");
  wc->add_option("--local-dir", w->local_dir, "Node-local directory (state cache)")->required();
  add_heartbeat_options(wc, w->hb);
  wc->callback([w] { run_worker(*w); });
}

}  // namespace eddy::app
