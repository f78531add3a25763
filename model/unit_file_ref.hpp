// unit_file_ref.hpp — a file of a unit's exported state (a snapshot or a delta) as a worker
// reports it to the coordinator and a manifest records it. Plain data; carried in actor
// messages (inspect() in actors/cluster_messages.hpp). No CAF, no librdkafka.
#pragma once

#include <cstdint>
#include <string>

namespace eddy {

struct unit_file_ref {
  std::string path;    ///< as the worker reported it (absolute, or relative to checkpoint.dir)
  uint64_t bytes = 0;  ///< its size
  std::string crc32c;  ///< the CRC32C of the whole file, 8 lowercase hex digits
  bool operator==(const unit_file_ref&) const = default;
};

}  // namespace eddy
