#include "worker/runtime/poller_actor.hpp"

#include <algorithm>
#include <iostream>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "actors/messages.hpp"
#include "worker/checkpoint/crash_point.hpp"
#include "worker/runtime/actor_faults.hpp"

namespace eddy {
namespace {

/// After a poll: logs librdkafka's errors and whether the brokers can be reached (broker_watch),
/// and with --max-unreachable fails the run once they have been unreachable that long. While
/// they are down, asks for metadata every 2 s (0.5 s at most), so that their return shows even
/// when no message arrives.
void watch_brokers(caf::stateful_actor<poller_state>* self) {
  auto& st = self->state;
  std::ostream& log = st.ctx->opts.log ? *st.ctx->opts.log : std::cerr;
  for (const auto& e : st.consumer->take_errors())
    log << "eddy: warning: Kafka consumer: " << e << "\n";
  const auto now = std::chrono::steady_clock::now();
  kafka_consumer::broker_state b = st.consumer->brokers();
  if (b.all_down && now - st.last_probe >= std::chrono::seconds(2)) {
    st.last_probe = now;
    if (st.consumer->probe_brokers(st.ctx->cfg->source.topic, 500)) b = st.consumer->brokers();
  }
  if (auto line = st.brokers.update(b.all_down, b.reason, now)) {
    log << "eddy: " << *line << "\n";
    log.flush();
  }
  const auto limit = st.ctx->opts.max_unreachable;
  if (limit.count() > 0 && !st.unreachable_failed && st.brokers.down_for(now) >= limit) {
    st.unreachable_failed = true;
    const std::string error =
        "Kafka brokers unreachable for " +
        std::to_string(
            std::chrono::duration_cast<std::chrono::seconds>(st.brokers.down_for(now)).count()) +
        " s (--max-unreachable " + std::to_string(limit.count() / 1000) + ")" +
        (st.brokers.reason().empty() ? "" : ": " + st.brokers.reason());
    st.ctx->note_failure(error);
    self->send(st.worker, failed_atom::value, error);
  }
}

void end_partitions(caf::stateful_actor<poller_state>* self, const std::set<int32_t>& which) {
  auto& st = self->state;
  for (int32_t p : which) {
    auto it = st.tasks.find(p);
    if (it == st.tasks.end()) continue;
    kafka_batch b;
    b.topic = st.ctx->cfg->source.topic;
    b.partition = p;
    b.end = true;
    self->send(it->second, std::move(b));
    st.tasks.erase(it);
  }
}

/// Where a partition the checkpoint does not know starts: starting_offsets applies to a new
/// pipeline only (as in Spark); a partition added to a restored one (the topic grew) starts at
/// its beginning.
int64_t default_start(const poller_state& st) {
  return st.ctx->restored_epoch == 0 && st.ctx->cfg->source.starting_offsets == "latest"
             ? offset_end
             : offset_beginning;
}

}  // namespace

caf::behavior poller_actor(caf::stateful_actor<poller_state>* self,
                           std::shared_ptr<run_context> ctx,
                           std::shared_ptr<kafka_consumer> consumer, caf::actor worker,
                           std::map<int32_t, int64_t> resume) {
  fail_run_on_exception(self, ctx, "Kafka poller");
  auto& st = self->state;
  st.ctx = ctx;
  st.consumer = std::move(consumer);
  st.worker = std::move(worker);
  return {
      [self, resume](assign_atom, const std::vector<int32_t>& partitions,
                     const std::vector<caf::actor>& tasks) {
        auto& st = self->state;
        std::vector<std::pair<int32_t, int64_t>> start;
        const int64_t from = default_start(st);
        for (size_t i = 0; i < partitions.size(); ++i) {
          st.tasks[partitions[i]] = tasks[i];
          auto it = resume.find(partitions[i]);
          start.emplace_back(partitions[i],
                             it != resume.end() && it->second >= 0 ? it->second : from);
        }
        std::string err;
        if (!st.consumer->assign(st.ctx->cfg->source.topic, start, &err)) {
          st.ctx->note_failure(err);
          self->send(st.worker, failed_atom::value, err);
          return;
        }
        self->send(self, poll_atom::value);
      },
      // More partitions for a running poller (a cluster host kept across a generation change
      // took them over): added to the assignment from `offsets` (-1: as a partition the
      // checkpoint does not know); the others go on.
      [self](assign_atom, const std::vector<int32_t>& partitions,
             const std::vector<caf::actor>& tasks, const std::vector<int64_t>& offsets) {
        auto& st = self->state;
        const int64_t from = default_start(st);
        std::vector<std::pair<int32_t, int64_t>> start;
        for (size_t i = 0; i < partitions.size() && i < tasks.size(); ++i) {
          st.tasks[partitions[i]] = tasks[i];
          start.emplace_back(partitions[i],
                             i < offsets.size() && offsets[i] >= 0 ? offsets[i] : from);
        }
        std::string err;
        if (!st.consumer->add_partitions(st.ctx->cfg->source.topic, start, &err)) {
          st.ctx->note_failure(err);
          self->send(st.worker, failed_atom::value, err);
        }
      },
      [self](poll_atom) {
        auto& st = self->state;
        if (st.tasks.empty()) return;
        fault_point("poller");
        const bool stop = st.ctx->opts.stop && st.ctx->opts.stop->load();
        if (stop || st.ctx->abort.load() || st.unreachable_failed) {
          // With checkpoints, a stopped pipeline keeps its windows open in the final checkpoint
          // and continues them on the next run.
          if (st.ctx->checkpointing) st.ctx->drain = false;
          std::set<int32_t> all;
          for (const auto& [p, _] : st.tasks) all.insert(p);
          end_partitions(self, all);
          return;
        }
        const int64_t max_in_flight = st.ctx->cfg->source.max_in_flight_mb << 20;
        const int64_t in_flight = st.ctx->in_flight_bytes.load(std::memory_order_relaxed);
        if (in_flight >= max_in_flight - max_in_flight / 4) {
          // Backpressure: the tasks and the sink have enough to do. librdkafka keeps
          // prefetching into its own bounded queue meanwhile. Fetching resumes with a quarter of
          // the limit free, so that a poll is not a message or two.
          self->delayed_send(self, std::chrono::milliseconds(2), poll_atom::value);
          return;
        }
        size_t max = static_cast<size_t>(st.ctx->cfg->source.max_records_per_poll);
        if (const int64_t rate = st.ctx->cfg->source.max_records_per_second; rate > 0) {
          // Token bucket: fetch at most what the rate allows since the first poll; otherwise
          // wait (here, on the poller's own thread) for the next record's share of time.
          const auto now = std::chrono::steady_clock::now();
          if (st.rate_records == 0) st.rate_start = now;
          const double elapsed = std::chrono::duration<double>(now - st.rate_start).count();
          const int64_t allowed =
              static_cast<int64_t>(elapsed * static_cast<double>(rate)) + 1 - st.rate_records;
          if (allowed <= 0) {
            self->delayed_send(self, std::chrono::milliseconds(5), poll_atom::value);
            return;
          }
          max = std::min(max, static_cast<size_t>(std::min<int64_t>(allowed, 1 << 20)));
        }
        const std::string& topic = st.ctx->cfg->source.topic;
        std::map<int32_t, kafka_batch> batches;
        std::set<int32_t> eof;
        std::string err;
        bool ok = true;
        st.consumer->poll(
            100, max,
            [&](const fetched_message& m) {
              auto& b = batches[m.partition];
              if (b.entries.empty()) {
                b.topic = topic;
                b.partition = m.partition;
              }
              b.add(m.offset, m.timestamp_ms, std::string_view(m.key ? m.key : "", m.key_size),
                    m.value, m.value_size);
            },
            [&](int32_t p, int64_t) { eof.insert(p); }, &err, &ok,
            // At most the room left under max_in_flight_mb (plus one message): the rest of the
            // fetched batch waits in the consumer.
            static_cast<size_t>(max_in_flight - in_flight), sizeof(kafka_batch::entry));
        for (auto& [p, b] : batches)
          if (!b.entries.empty()) st.fetched_to[p] = b.entries.back().offset + 1;
        for (int32_t p : eof) {
          auto it = st.fetched_to.find(p);
          st.ctx->note_reached_end(p, it == st.fetched_to.end() ? -1 : it->second);
        }
        watch_brokers(self);
        for (auto& [p, b] : batches) {
          st.rate_records += static_cast<int64_t>(b.entries.size());
          auto it = st.tasks.find(p);
          if (it == st.tasks.end()) continue;
          const int64_t cost = b.in_flight_cost();
          const int64_t now_in_flight =
              st.ctx->in_flight_bytes.fetch_add(cost, std::memory_order_relaxed) + cost;
          if (now_in_flight > st.ctx->max_in_flight_bytes.load(std::memory_order_relaxed))
            st.ctx->max_in_flight_bytes.store(now_in_flight, std::memory_order_relaxed);
          self->send(it->second, std::move(b));
        }
        if (!ok) {
          st.ctx->note_failure(err);
          self->send(st.worker, failed_atom::value, err);
          std::set<int32_t> all;
          for (const auto& [p, _] : st.tasks) all.insert(p);
          end_partitions(self, all);
          return;
        }
        if (st.ctx->opts.exit_at_end && !eof.empty()) end_partitions(self, eof);
        if (!st.tasks.empty()) self->send(self, poll_atom::value);
      },
  };
}

}  // namespace eddy
