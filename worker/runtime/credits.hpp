// credits.hpp — credit-based flow control between source tasks and aggregator shards, by
// messages only, so that it works the same whether a shard is in the task's process or on
// another worker (issue 11: no actor reads another's memory).
//
// The unit of credit is one partial batch (one partials_msg). Why not bytes: a task sends exactly
// one partial batch to every shard per Kafka batch it processes (empty ones too: they carry the
// watermark), so a window of W partial batches means "at most W of this partition's fetched
// batches ahead of the slowest shard", and the input behind them is bounded already by
// source.max_in_flight_mb and max_records_per_poll. A batch's size in bytes is known only once
// CAF encodes it for another process (local shards get a pointer, never an encoding): counting
// bytes would cost an encode per local send, or differ between local and remote shards.
//
// Protocol (worker/runtime/source_task.cpp, shard_actor.cpp):
// * Each task starts with `partial_credit_window` credits for every shard (implicitly: both
//   sides know the constant, so no grant round trip starts a generation). Every partials_msg it
//   sends spends one. It processes a Kafka batch only while it has credit for every shard (each
//   batch sends to all of them); otherwise it holds the batch unprocessed, its in-flight bytes
//   still counted, so its worker's poller stops fetching once source.max_in_flight_mb is reached.
// * A shard returns credit to the sending task, `(credit_atom, generation, shard, n)`, for every
//   partials_msg it takes from its mailbox — merged, or held back while it aligns a barrier (a
//   shard waiting for the other tasks' barriers must not starve the task whose barrier came
//   first: with replayed epochs the others' barriers need input that a full in-flight budget
//   would keep the poller from fetching). It returns them in chunks of `partial_credit_chunk`.
// * Barriers and the partials a checkpoint cuts are never held for credit: a barrier follows the
//   partials it closes and goes out at once (it may overdraw the window by that one batch).
// * Credits live in the task and shard actors of one generation (new actors per generation),
//   and grants carry the generation: a task drops a grant of another one.
// No deadlock: a task waits only while it has W or more batches unreturned for some shard;
// once that shard has taken them all from its mailbox, fewer than `partial_credit_chunk` (< W)
// remain unreturned, so the grant that ends the wait is on its way.
//
// Pure logic, no CAF: owned by one actor each.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace eddy {

/// Partial batches a task may send to one shard before that shard returns credit.
inline constexpr int32_t partial_credit_window = 16;
/// A shard returns credit once it owes a task this many (a quarter of the window: one credit
/// message per four partial batches).
inline constexpr int32_t partial_credit_chunk = 4;
static_assert(partial_credit_chunk > 0 && partial_credit_chunk <= partial_credit_window);

/// The sending task's side: credit per shard.
class credit_gate {
 public:
  explicit credit_gate(size_t shards, int32_t window = partial_credit_window)
      : window_(window), credit_(shards, window) {}

  /// Every shard has credit: the task may process its next batch.
  [[nodiscard]] bool open() const {
    return std::all_of(credit_.begin(), credit_.end(), [](int32_t c) { return c > 0; });
  }
  /// One partial batch sent to `shard` (credit may go below zero: checkpoint partials).
  void spend(size_t shard) {
    if (shard >= credit_.size()) return;
    const int32_t unreturned = window_ - --credit_[shard];
    peak_unreturned_ = std::max(peak_unreturned_, unreturned);
  }
  /// `shard` returned `n` credits.
  void grant(size_t shard, int32_t n) {
    if (shard < credit_.size() && n > 0) credit_[shard] += n;
  }
  /// Partial batches sent to `shard` that it has not returned credit for.
  [[nodiscard]] int32_t unreturned(size_t shard) const {
    return shard < credit_.size() ? window_ - credit_[shard] : 0;
  }
  /// The most unreturned partial batches to one shard there ever were.
  [[nodiscard]] int32_t peak_unreturned() const { return peak_unreturned_; }
  [[nodiscard]] int32_t window() const { return window_; }

 private:
  int32_t window_;
  std::vector<int32_t> credit_;
  int32_t peak_unreturned_ = 0;
};

/// The shard's side: credit it owes each sending task (by partition).
class credit_ledger {
 public:
  explicit credit_ledger(int32_t chunk = partial_credit_chunk) : chunk_(chunk) {}

  /// One partial batch of `partition` taken from the mailbox. Returns how many credits to send
  /// that task now (0: keep owing).
  [[nodiscard]] int32_t took(int32_t partition) {
    int32_t& owed = owed_[partition];
    if (++owed < chunk_) return 0;
    const int32_t n = owed;
    owed = 0;
    return n;
  }

 private:
  int32_t chunk_;
  std::unordered_map<int32_t, int32_t> owed_;
};

}  // namespace eddy
