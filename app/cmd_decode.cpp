// eddy decode — a dry run of a pipeline's decoding and cleaning on messages from stdin.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "app/commands.hpp"
#include "model/pipeline_config.hpp"
#include "worker/decode/record_processor.hpp"
#include "worker/sink/sink.hpp"

namespace eddy::app {

namespace {
std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

// Lines of a stream, each held only up to `max_bytes`: a longer line is read to its end and
// counted, never stored, so memory stays bounded whatever the input.
class line_reader {
 public:
  enum class result : uint8_t {
    line,      ///< `line()` holds the next line (without its '\n')
    too_long,  ///< the next line has `length()` > max_bytes bytes; not stored
    binary,    ///< a NUL byte at `length()` of the current line: not text, reading stops
    end,       ///< end of input
    error,     ///< a read error (errno in `error_number()`)
  };

  line_reader(std::FILE* f, size_t max_bytes) : f_(f), max_(max_bytes), buf_(64 * 1024) {}

  result next() {
    line_.clear();
    length_ = 0;
    bool any = false;  // a byte (content or the newline) consumed
    for (;;) {
      if (pos_ == end_) {
        if (eof_) break;
        end_ = std::fread(buf_.data(), 1, buf_.size(), f_);
        pos_ = 0;
        if (end_ == 0) {
          if (std::ferror(f_)) {
            errno_ = errno;
            return result::error;
          }
          eof_ = true;
          break;
        }
      }
      any = true;
      const char* begin = buf_.data() + pos_;
      const size_t avail = end_ - pos_;
      const auto* nl = static_cast<const char*>(std::memchr(begin, '\n', avail));
      const size_t n = nl ? static_cast<size_t>(nl - begin) : avail;
      if (const void* nul = std::memchr(begin, '\0', n)) {
        length_ += static_cast<size_t>(static_cast<const char*>(nul) - begin);
        return result::binary;
      }
      if (length_ + n <= max_) line_.append(begin, n);
      length_ += n;
      pos_ += nl ? n + 1 : n;
      if (nl) break;
    }
    if (!any) return result::end;  // nothing consumed: "a\n" then end of input is one line
    return length_ > max_ ? result::too_long : result::line;
  }

  [[nodiscard]] const std::string& line() const { return line_; }
  [[nodiscard]] size_t length() const { return length_; }
  [[nodiscard]] int error_number() const { return errno_; }

 private:
  std::FILE* f_;
  size_t max_;
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
  std::string line_;
  size_t length_ = 0;
  int errno_ = 0;
};
}  // namespace

void add_decode_command(CLI::App& root) {
  auto config = std::make_shared<std::string>();
  CLI::App* cmd = root.add_subcommand(
      "decode",
      "Dry-run a pipeline's decoding, cleaning and filter on raw messages, one per line on\n"
      "stdin (e.g. `kcat -C -e -t TOPIC | eddy decode -c pipeline.toml`). Prints one JSON line\n"
      "per message: {\"line\":N,\"outcome\":\"out\",\"row\":{...}} or the filter/dead-letter\n"
      "reason. An empty line is a tombstone (filtered); a line longer than\n"
      "source.max_message_bytes is dead-lettered without being held. No Kafka needed. Exit\n"
      "status 0; 1 when stdin cannot be read or is not text (a NUL byte); 2 for a bad pipeline\n"
      "file.");
  cmd->add_option("-c,--config", *config, "Pipeline file (TOML)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->callback([config] {
    auto loaded = load_pipeline_config(*config);
    if (!loaded.config) throw CLI::RuntimeError(loaded.error, 2);
    const pipeline_config& cfg = *loaded.config;
    std::string err;
    auto fmt = time_formatter::for_zone(cfg.timezone, &err);
    if (!fmt) throw CLI::RuntimeError("pipeline.timezone: " + err, 2);
    auto processor = record_processor::create(cfg, &err);
    if (!processor) throw CLI::RuntimeError(err, 2);
    std::ios::sync_with_stdio(false);
    const auto max_bytes = static_cast<size_t>(cfg.source.max_message_bytes);
    line_reader input(stdin, max_bytes);
    int64_t n = 0;
    record_counters counters;
    std::vector<row> rows;
    std::vector<dead_letter> dead;
    std::string failure;
    for (;;) {
      const auto got = input.next();
      if (got == line_reader::result::end) break;
      if (got == line_reader::result::error) {
        failure = std::string("cannot read stdin: ") + std::strerror(input.error_number());
        break;
      }
      ++n;
      if (got == line_reader::result::binary) {
        failure = "line " + std::to_string(n) + ": a NUL byte at byte " +
                  std::to_string(input.length()) +
                  ": the input is not text (eddy decode reads one JSON message per line)";
        break;
      }
      if (got == line_reader::result::too_long) {
        // What run does with such a message (the decoder's check), without holding it.
        ++counters.in;
        ++counters.dead_lettered;
        std::cout << "{\"line\":" << n << ",\"outcome\":\"dead_letter\",\"reason\":"
                  << json_string("message too large: " + std::to_string(input.length()) +
                                 " bytes > source.max_message_bytes = " + std::to_string(max_bytes))
                  << "}\n";
        continue;
      }
      raw_record r;
      r.topic = cfg.source.topic;
      r.offset = n - 1;
      r.value = input.line();
      r.value_is_null = r.value.empty();  // kcat prints a tombstone as an empty line
      rows.clear();
      dead.clear();
      auto outcome = processor->process(r, rows, dead, counters);
      std::cout << "{\"line\":" << n << ",\"outcome\":";
      switch (outcome) {
        case record_outcome::out:
          std::cout << "\"out\",\"row\":" << row_to_json(processor->schema(), rows.front(), *fmt);
          break;
        case record_outcome::filtered:
          std::cout << "\"filtered\",\"reason\":" << json_string(processor->last_reason());
          break;
        case record_outcome::dead_lettered:
          std::cout << "\"dead_letter\",\"reason\":" << json_string(processor->last_reason());
          break;
      }
      std::cout << "}\n";
    }
    std::cout.flush();
    std::cerr << "decoded " << counters.in << " messages: " << counters.out << " out, "
              << counters.filtered << " filtered, " << counters.dead_lettered << " dead-lettered\n";
    if (!failure.empty()) throw CLI::RuntimeError(failure, 1);
  });
}

}  // namespace eddy::app
