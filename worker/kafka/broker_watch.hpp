// broker_watch.hpp — what eddy says when the Kafka brokers cannot be reached, and how often.
//
// librdkafka retries unreachable brokers forever and says so only in its own log lines. The
// poller feeds its consumer's view (kafka_consumer::brokers(): all down or not, and the last
// connection error) into a broker_watch after every poll; `update` returns the line to log:
//   - when the brokers become unreachable: "Kafka brokers unreachable (<reason>); retrying"
//   - every `repeat` (10 s) while they stay so: "Kafka brokers unreachable for 30 s (<reason>);
//     retrying"
//   - when they answer again: "Kafka brokers reachable again after 34 s"
// `down_for` tells how long they have been unreachable (for --max-unreachable).
// Pure logic: no librdkafka, no CAF; not thread-safe (the poller's thread only).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace eddy {

class broker_watch {
 public:
  using clock = std::chrono::steady_clock;

  explicit broker_watch(std::chrono::milliseconds repeat = std::chrono::seconds(10))
      : repeat_(repeat) {}

  /// The brokers' state at `now`; the line to log (without "eddy: " and newline), if any.
  std::optional<std::string> update(bool all_down, const std::string& reason,
                                    clock::time_point now) {
    if (!all_down) {
      if (!down_) return std::nullopt;
      down_ = false;
      return "Kafka brokers reachable again after " + seconds(now - since_) + " s";
    }
    if (!down_ || !reason.empty()) reason_ = reason;
    if (!down_) {
      down_ = true;
      since_ = now;
      next_ = now + repeat_;
      return "Kafka brokers unreachable" + why() + "; retrying";
    }
    if (now < next_) return std::nullopt;
    while (next_ <= now) next_ += repeat_;
    return "Kafka brokers unreachable for " + seconds(now - since_) + " s" + why() + "; retrying";
  }

  [[nodiscard]] bool down() const { return down_; }
  /// How long the brokers have been unreachable at `now`; zero while they are reachable.
  [[nodiscard]] clock::duration down_for(clock::time_point now) const {
    return down_ ? now - since_ : clock::duration::zero();
  }
  /// librdkafka's last connection error while down ("" if it gave none).
  [[nodiscard]] const std::string& reason() const { return reason_; }

 private:
  static std::string seconds(clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count());
  }
  [[nodiscard]] std::string why() const { return reason_.empty() ? "" : " (" + reason_ + ")"; }

  std::chrono::milliseconds repeat_;
  bool down_ = false;
  clock::time_point since_{}, next_{};
  std::string reason_;
};

}  // namespace eddy
